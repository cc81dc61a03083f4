"""Back office for the cash ledger: everything is read-only here.

Balances change only through postings (apps.ledger.services); an editable change form would
let a stale page overwrite a balance, so no model is changeable in the admin. Blocking and
unblocking trading are actions that call the service.
"""

from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.common.errors import DomainError
from apps.common.http import client_ip
from apps.ledger.models import CashAccount, Hold, Posting, PostingLine
from apps.ledger.services import cash_account_set_trading_blocked


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CashAccount)
class CashAccountAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "owner_email",
        "kind",
        "currency",
        "balance",
        "held",
        "available",
        "trading_blocked",
    )
    list_filter = ("kind", "currency", "trading_blocked")
    search_fields = ("owner__email",)
    list_select_related = ("owner",)
    actions = ("block_trading", "unblock_trading")

    def has_block_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ledger.change_cashaccount")

    @admin.display(description="Owner", ordering="owner__email")
    def owner_email(self, account: CashAccount) -> str:
        return account.owner.email if account.owner else "(house)"

    @admin.display(description="Available")
    def available(self, account: CashAccount) -> Decimal:
        return account.available

    def _set_blocked(
        self, request: HttpRequest, queryset: QuerySet[CashAccount], *, blocked: bool
    ) -> None:
        done = 0
        reason = f"Blocked from the back office by {getattr(request.user, 'email', 'staff')}."
        for account_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                cash_account_set_trading_blocked(
                    account_id=account_id,
                    blocked=blocked,
                    reason=reason if blocked else "",
                    actor=request.user,
                    ip=client_ip(request),
                )
            except DomainError as exc:
                self.message_user(
                    request, f"Account #{account_id}: {exc.message}", level=messages.ERROR
                )
            else:
                done += 1
        if done:
            verb = "Blocked" if blocked else "Unblocked"
            self.message_user(request, f"{verb} trading on {done} account(s).", messages.SUCCESS)

    @admin.action(description="Block trading on selected accounts", permissions=["block"])
    def block_trading(self, request: HttpRequest, queryset: QuerySet[CashAccount]) -> None:
        self._set_blocked(request, queryset, blocked=True)

    @admin.action(description="Unblock trading on selected accounts", permissions=["block"])
    def unblock_trading(self, request: HttpRequest, queryset: QuerySet[CashAccount]) -> None:
        self._set_blocked(request, queryset, blocked=False)


class PostingLineInline(admin.TabularInline[PostingLine, Posting]):
    model = PostingLine
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("account", "currency", "amount", "balance_after")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "reference_type", "reference_id", "memo", "created_at")
    list_filter = ("kind", "created_at")
    search_fields = ("reference_id", "memo")
    inlines = (PostingLineInline,)


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "account",
        "reason",
        "status",
        "original_amount",
        "amount",
        "consumed_amount",
        "released_amount",
        "reference_type",
        "reference_id",
        "updated_at",
    )
    list_filter = ("status", "reason")
    search_fields = ("reference_id", "account__owner__email")
    list_select_related = ("account",)
