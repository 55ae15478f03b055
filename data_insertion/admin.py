"""The three models in Django's admin; reads and writes go through the router to each database.

A record saved here follows the same rules as one inserted by the services: its own fields
through the form, and the rules that need other rows (email uniqueness, an order's user and
product) checked again in the write transaction that saves it.

A sharded model's list scatters and gathers: a read-only page of every one of its databases'
rows, newest id first, with the search box and a count per database. Django's changelist needs
one QuerySet (count, ordering, slicing, filters, actions) and a QuerySet reads one database,
so the list is gathered by hand instead: each database's first `offset + page` matching rows,
merged by id. A row opens in its own database (its id says which), and a new or changed record
is saved where its logical shard maps (services.save_checked).
"""

import heapq

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.template.response import TemplateResponse

from . import services
from .models import Order, Product, User
from .topology import shardmap

SHARDED_PAGE_ROWS = 100
# A sharded list goes this deep at most: each page reads offset + page rows from every database.
SHARDED_MAX_ROWS = 10_000


class CheckedForm(forms.ModelForm):
    def _post_clean(self) -> None:
        super()._post_clean()  # the instance now holds the cleaned values, fields validated
        if not self.errors:
            for field, errors in services.other_row_errors(self.instance).items():
                self.add_error(field if field in self.fields else None, errors)


class CheckedAdmin(admin.ModelAdmin):
    form = CheckedForm
    # Fields that decide a sharded record's logical shard: changing one would move the row (and,
    # for a user, its orders) to another database, which only a rebalance does.
    placement_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and shardmap.layout(self.model._meta.model_name) is not None:
            fields += self.placement_fields
        return fields

    def get_object(self, request, object_id, from_field=None):
        """A sharded model's row from the database its id maps to."""
        layout = shardmap.layout(self.model._meta.model_name)
        if layout is None or from_field is not None:
            return super().get_object(request, object_id, from_field)
        try:
            row_id = int(object_id)
        except ValueError:
            return None
        queryset = self.get_queryset(request).using(layout.alias_of_id(row_id))
        return queryset.filter(pk=row_id).first()

    def changelist_view(self, request, extra_context=None):
        layout = shardmap.layout(self.model._meta.model_name)
        if layout is None:
            return super().changelist_view(request, extra_context)
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        return self._sharded_changelist(request, layout)

    def _sharded_changelist(self, request, layout: shardmap.ShardLayout) -> TemplateResponse:
        """Every database's matching rows, gathered into one read-only page, newest id first."""
        search = request.GET.get("q", "").strip()
        counts, streams = {}, []
        page_number = _page_number(request.GET.get("p"))
        wanted = min(page_number * SHARDED_PAGE_ROWS, SHARDED_MAX_ROWS)
        for alias in layout.aliases:
            queryset = self.get_queryset(request).using(alias)
            if search:
                queryset, _ = self.get_search_results(request, queryset, search)
            queryset = queryset.order_by("-pk")
            counts[alias] = queryset.count()
            streams.append(queryset[:wanted])
        gathered = list(heapq.merge(*streams, key=lambda row: -row.pk))
        paginator = Paginator(gathered, SHARDED_PAGE_ROWS)
        page = paginator.get_page(page_number)
        fields = [name for name in self.list_display if name != "__str__"]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Select {self.model._meta.verbose_name} to view or change",
            "fields": fields,
            "rows": [(row, [getattr(row, name) for name in fields]) for row in page],
            "page": page,
            "search": search,
            "counts": counts,
            "total": sum(counts.values()),
            "shown": len(gathered),
            "more": page.number * SHARDED_PAGE_ROWS < min(sum(counts.values()), SHARDED_MAX_ROWS),
            "has_add_permission": self.has_add_permission(request),
        }
        return TemplateResponse(request, "admin/data_insertion/sharded_change_list.html", context)

    def save_model(self, request, obj, form, change) -> None:
        errors = services.save_checked(obj)
        if errors:  # another writer got there between the form's check and this save
            reasons = "; ".join(f"{field}: {' '.join(text)}" for field, text in errors.items())
            self.message_user(request, f"Not saved: {reasons}", level=messages.ERROR)


@admin.register(User)
class UserAdmin(CheckedAdmin):
    placement_fields = ("email",)
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
    placement_fields = ("user_id",)
    list_display = ["id", "user_id", "product_id", "quantity", "created_at"]
    list_filter = ["created_at"]
    readonly_fields = ["created_at"]


def _page_number(text: str | None) -> int:
    try:
        return max(1, int(text or 1))
    except ValueError:
        return 1
