"""The three models in Django's admin; reads and writes go through the router to each database."""

from django.contrib import admin

from .models import Order, Product, User


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "email", "created_at"]
    search_fields = ["name", "email"]
    readonly_fields = ["created_at"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "price", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "user_id", "product_id", "quantity", "created_at"]
    list_filter = ["created_at"]
    readonly_fields = ["created_at"]
