from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.settlement.models import SettlementCursor


@admin.register(SettlementCursor)
class SettlementCursorAdmin(admin.ModelAdmin[SettlementCursor]):
    """Read-only: moving a cursor by hand would skip or re-apply money movements."""

    list_display = ("shard", "last_seq", "updated_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
