"""Back office for positions and fills: read-only (settlement is their only writer)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.portfolio.models import Fill, Position


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user_email",
        "symbol",
        "quantity",
        "held_quantity",
        "cost_basis",
        "realized_pnl",
        "updated_at",
    )
    search_fields = ("user__email", "instrument__symbol")
    list_select_related = ("user", "instrument")
    ordering = ("user__email", "instrument__symbol")

    @admin.display(description="User", ordering="user__email")
    def user_email(self, position: Position) -> str:
        return position.user.email

    @admin.display(description="Symbol", ordering="instrument__symbol")
    def symbol(self, position: Position) -> str:
        return position.instrument.symbol


@admin.register(Fill)
class FillAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "executed_at",
        "user_email",
        "symbol",
        "side",
        "liquidity",
        "price",
        "quantity",
        "notional",
        "commission",
        "realized_pnl",
        "order_id",
    )
    list_filter = ("side", "liquidity")
    search_fields = ("user__email", "instrument__symbol", "=order__id")
    list_select_related = ("user", "instrument")
    date_hierarchy = "executed_at"
    ordering = ("-executed_at", "-id")
    show_full_result_count = False

    @admin.display(description="User", ordering="user__email")
    def user_email(self, fill: Fill) -> str:
        return fill.user.email

    @admin.display(description="Symbol", ordering="instrument__symbol")
    def symbol(self, fill: Fill) -> str:
        return fill.instrument.symbol
