"""Back office for funding: verify bank accounts, approve or reject withdrawals.

Every model is view-only; changes go through the actions, which call one service each and
report refusals with `message_user(..., level=ERROR)`. Maker-checker: a withdrawal above the
threshold needs approvals from distinct staff users (the service enforces it, not this page).
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from apps.common.errors import DomainError
from apps.common.http import client_ip
from apps.funding.models import BankAccount, Deposit, Withdrawal, WithdrawalApproval
from apps.funding.services import (
    MAX_REASON_LENGTH,
    bank_account_remove,
    bank_account_whitelist,
    withdrawal_approve,
    withdrawal_reject,
)
from apps.kyc.selectors import kyc_application_for
from apps.ledger.admin import ReadOnlyAdmin


def _run_each(
    admin_obj: admin.ModelAdmin[Any],
    request: HttpRequest,
    ids: list[int],
    label: str,
    call: Any,
    done_message: str,
) -> None:
    done = 0
    for object_id in ids:
        try:
            call(object_id)
        except DomainError as exc:
            admin_obj.message_user(request, f"{label} #{object_id}: {exc.message}", messages.ERROR)
        else:
            done += 1
    if done:
        admin_obj.message_user(request, done_message.format(done=done), messages.SUCCESS)


@admin.register(BankAccount)
class BankAccountAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user_email",
        "holder_name",
        "kyc_legal_name",
        "bank_name",
        "masked_number",
        "currency",
        "status",
        "whitelisted_at",
    )
    list_filter = ("status", "currency")
    search_fields = ("user__email", "holder_name", "bank_name")
    list_select_related = ("user",)
    exclude = ("account_number_fingerprint", "gateway_token")
    actions = ("whitelist_selected", "remove_selected")

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("funding.verify_bankaccount")

    @admin.display(description="Email", ordering="user__email")
    def user_email(self, bank_account: BankAccount) -> str:
        return bank_account.user.email

    @admin.display(description="KYC legal name (must match the holder)")
    def kyc_legal_name(self, bank_account: BankAccount) -> str:
        application = kyc_application_for(user=bank_account.user)
        return application.legal_name if application else "—"

    @admin.action(description="Whitelist selected bank accounts (verified)", permissions=["verify"])
    def whitelist_selected(self, request: HttpRequest, queryset: QuerySet[BankAccount]) -> None:
        _run_each(
            self,
            request,
            list(queryset.order_by("pk").values_list("pk", flat=True)),
            "Bank account",
            lambda pk: bank_account_whitelist(
                bank_account_id=pk, staff=request.user, ip=client_ip(request)
            ),
            "Whitelisted {done} bank account(s).",
        )

    @admin.action(description="Remove selected bank accounts", permissions=["verify"])
    def remove_selected(self, request: HttpRequest, queryset: QuerySet[BankAccount]) -> None:
        _run_each(
            self,
            request,
            list(queryset.order_by("pk").values_list("pk", flat=True)),
            "Bank account",
            lambda pk: bank_account_remove(
                bank_account_id=pk, actor=request.user, ip=client_ip(request)
            ),
            "Removed {done} bank account(s).",
        )


@admin.register(Deposit)
class DepositAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "amount",
        "currency",
        "status",
        "gateway",
        "gateway_reference",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "currency", "gateway")
    search_fields = ("user__email", "gateway_reference", "idempotency_key")
    list_select_related = ("user",)


class WithdrawalApprovalInline(admin.TabularInline[WithdrawalApproval, Withdrawal]):
    model = WithdrawalApproval
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("staff", "created_at")
    readonly_fields = fields
    verbose_name_plural = "Approvals"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RejectReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason for rejection",
        help_text="Shown to the customer. The held funds are released.",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        max_length=MAX_REASON_LENGTH,
        required=False,  # the service refuses an empty reason, with the same message as the API
    )


@admin.register(Withdrawal)
class WithdrawalAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "amount",
        "currency",
        "status",
        "approvals",
        "bank_account",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "currency")
    search_fields = ("user__email", "gateway_reference")
    list_select_related = ("user", "bank_account")
    inlines = (WithdrawalApprovalInline,)
    actions = ("approve_selected", "reject_selected")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("funding.approve_withdrawal")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Withdrawal]:
        return super().get_queryset(request).annotate(approval_count=Count("approvals"))

    @admin.display(description="Approvals")
    def approvals(self, withdrawal: Withdrawal) -> str:
        if not withdrawal.requires_approvals:
            return "not needed"
        given = getattr(withdrawal, "approval_count", None)
        if given is None:
            given = withdrawal.approvals.count()
        return f"{given}/{withdrawal.requires_approvals}"

    @admin.action(description="Approve selected withdrawals", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> None:
        _run_each(
            self,
            request,
            list(queryset.order_by("pk").values_list("pk", flat=True)),
            "Withdrawal",
            lambda pk: withdrawal_approve(
                withdrawal_id=pk, staff=request.user, ip=client_ip(request)
            ),
            "Recorded your approval on {done} withdrawal(s).",
        )

    @admin.action(description="Reject selected withdrawals…", permissions=["approve"])
    def reject_selected(
        self, request: HttpRequest, queryset: QuerySet[Withdrawal]
    ) -> TemplateResponse | None:
        form = RejectReasonForm()
        if "apply" in request.POST:
            form = RejectReasonForm(request.POST)
            if form.is_valid():
                reason = form.cleaned_data["reason"]
                if reason.strip():
                    _run_each(
                        self,
                        request,
                        list(queryset.order_by("pk").values_list("pk", flat=True)),
                        "Withdrawal",
                        lambda pk: withdrawal_reject(
                            withdrawal_id=pk,
                            staff=request.user,
                            reason=reason,
                            ip=client_ip(request),
                        ),
                        "Rejected {done} withdrawal(s); the funds were released.",
                    )
                    return None
                form.add_error("reason", "Enter a reason: the customer is shown it.")
                self.message_user(
                    request, "A reason is required; nothing was changed.", messages.ERROR
                )
        hidden = [("action", "reject_selected"), ("apply", "1")] + [
            (ACTION_CHECKBOX_NAME, str(pk)) for pk in queryset.values_list("pk", flat=True)
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject withdrawals",
            "opts": self.opts,
            "withdrawals": list(queryset.select_related("user")),
            "form": form,
            "hidden": hidden,
            "form_action": request.get_full_path(),
        }
        return TemplateResponse(request, "funding/admin/reject.html", context)
