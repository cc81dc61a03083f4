"""Back office for orders and risk limits.

Orders, their transition log and the outbox are read-only: they change only through the OMS
services and settlement. Risk tiers (the per-tier pre-trade limits) and the user -> tier
assignment are edited here; every change is an audit record with the before/after values.
"""

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest

from apps.audit.services import audit_record
from apps.common.http import client_ip
from apps.orders.models import Order, OrderEvent, OutboxCommand, RiskTier, TradingProfile


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrderEventInline(ReadOnlyMixin, admin.TabularInline[OrderEvent, Order]):
    model = OrderEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "from_status", "to_status", "engine_seq", "detail")
    readonly_fields = fields
    ordering = ("id",)


@admin.register(Order)
class OrderAdmin(ReadOnlyMixin, admin.ModelAdmin[Order]):
    list_display = (
        "id",
        "user_email",
        "symbol",
        "side",
        "order_type",
        "time_in_force",
        "quantity",
        "limit_price",
        "stop_price",
        "status",
        "filled_quantity",
        "pending_action",
        "created_at",
    )
    list_filter = ("status", "side", "order_type", "time_in_force", "pending_action")
    search_fields = ("=id", "client_order_id", "user__email", "instrument__symbol")
    list_select_related = ("user", "instrument")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    inlines = (OrderEventInline,)
    show_full_result_count = False  # COUNT(*) on a large order table is slow

    @admin.display(description="User", ordering="user__email")
    def user_email(self, order: Order) -> str:
        return order.user.email

    @admin.display(description="Symbol", ordering="instrument__symbol")
    def symbol(self, order: Order) -> str:
        return order.instrument.symbol


@admin.register(OutboxCommand)
class OutboxCommandAdmin(ReadOnlyMixin, admin.ModelAdmin[OutboxCommand]):
    list_display = ("id", "command_id", "shard", "created_at", "published_at")
    list_filter = ("shard", ("published_at", admin.EmptyFieldListFilter))
    search_fields = ("command_id",)
    ordering = ("-id",)
    show_full_result_count = False


def _snapshot(obj: Model, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in fields}


class AuditedAdmin(admin.ModelAdmin[Any]):
    """Saves inside a transaction with an audit record of the changed fields."""

    audit_action = ""
    audit_fields: tuple[str, ...] = ()

    def save_model(
        self, request: HttpRequest, obj: Any, form: ModelForm[Any], change: bool
    ) -> None:
        with transaction.atomic():
            before = None
            if change:
                current = type(obj).objects.select_for_update().get(pk=obj.pk)
                before = _snapshot(current, self.audit_fields)
            super().save_model(request, obj, form, change)
            audit_record(
                action=f"{self.audit_action}.{'updated' if change else 'created'}",
                actor=request.user,
                obj=obj,
                before=before,
                after=_snapshot(obj, self.audit_fields),
                ip=client_ip(request),
            )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keep the history readable; move users to another tier instead


@admin.register(RiskTier)
class RiskTierAdmin(AuditedAdmin):
    audit_action = "risk_tier"
    audit_fields = (
        "name",
        "max_order_quantity",
        "max_order_notional",
        "price_collar_pct",
        "market_buffer_pct",
        "daily_order_limit",
        "commission_bps",
        "commission_minimum",
        "is_default",
    )
    list_display = audit_fields
    list_display_links = ("name",)
    ordering = ("name",)
    search_fields = ("name",)


@admin.register(TradingProfile)
class TradingProfileAdmin(AuditedAdmin):
    audit_action = "trading_profile"
    audit_fields = ("user_id", "risk_tier_id")
    list_display = ("user", "risk_tier")
    list_filter = ("risk_tier",)
    list_select_related = ("user", "risk_tier")
    search_fields = ("user__email",)
    raw_id_fields = ("user",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[TradingProfile]:
        return super().get_queryset(request).select_related("user", "risk_tier")
