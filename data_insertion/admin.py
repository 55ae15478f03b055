"""The three models in Django's admin; reads and writes go through the router to each database.

A record saved here follows the same rules as one inserted by the services: its own fields
through the form, and the rules that need other rows (email uniqueness, an order's user and
product) checked again in the write transaction that saves it.
"""

from django import forms
from django.contrib import admin, messages

from . import services
from .models import Order, Product, User


class CheckedForm(forms.ModelForm):
    def _post_clean(self) -> None:
        super()._post_clean()  # the instance now holds the cleaned values, fields validated
        if not self.errors:
            for field, errors in services.other_row_errors(self.instance).items():
                self.add_error(field if field in self.fields else None, errors)


class CheckedAdmin(admin.ModelAdmin):
    form = CheckedForm

    def save_model(self, request, obj, form, change) -> None:
        errors = services.save_checked(obj)
        if errors:  # another writer got there between the form's check and this save
            reasons = "; ".join(f"{field}: {' '.join(text)}" for field, text in errors.items())
            self.message_user(request, f"Not saved: {reasons}", level=messages.ERROR)


@admin.register(User)
class UserAdmin(CheckedAdmin):
    list_display = ["id", "name", "email", "created_at"]
    search_fields = ["name", "email"]
    readonly_fields = ["created_at"]


@admin.register(Product)
class ProductAdmin(CheckedAdmin):
    list_display = ["id", "name", "price", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]


@admin.register(Order)
class OrderAdmin(CheckedAdmin):
    list_display = ["id", "user_id", "product_id", "quantity", "created_at"]
    list_filter = ["created_at"]
    readonly_fields = ["created_at"]
