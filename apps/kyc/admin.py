"""Back-office review of KYC applications.

Applicant data is read-only here: every change goes through the services (which check the state
machine and write the audit log). Approving works as a bulk action or from the review button on
an application; rejecting and requesting information need a reason, so both go through an
intermediate page with a form.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.accounts.models import User
from apps.common.errors import DomainError
from apps.common.http import client_ip
from apps.kyc.models import KycApplication, KycDocument, KycStatus
from apps.kyc.services import (
    MAX_REASON_LENGTH,
    kyc_application_approve,
    kyc_application_reject,
    kyc_application_request_info,
)
from apps.kyc.transitions import can_transition

# decision → (target status, verb for messages, whether a reason is needed)
DECISIONS: dict[str, tuple[KycStatus, str, bool]] = {
    "approve": (KycStatus.APPROVED, "Approve", False),
    "reject": (KycStatus.REJECTED, "Reject", True),
    "request_info": (KycStatus.MORE_INFO_REQUESTED, "Request more information", True),
}
_REASON_LABELS = {
    "reject": ("Reason for rejection", "Shown to the applicant. Rejection is final."),
    "request_info": (
        "Information needed",
        "Shown to the applicant, who can then update the application and resubmit.",
    ),
}


class ReviewReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        max_length=MAX_REASON_LENGTH,
        # Left to the service, so the admin shows the same refusal as every other caller.
        required=False,
    )

    def __init__(self, *args: Any, decision: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        label, help_text = _REASON_LABELS[decision]
        self.fields["reason"].label = label
        self.fields["reason"].help_text = help_text


def _reviewer(request: HttpRequest) -> User:
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def _call_decision(
    request: HttpRequest, *, decision: str, application_id: int, reason: str
) -> KycApplication:
    reviewer = _reviewer(request)
    ip = client_ip(request)
    if decision == "approve":
        return kyc_application_approve(application_id=application_id, reviewer=reviewer, ip=ip)
    if decision == "reject":
        return kyc_application_reject(
            application_id=application_id, reviewer=reviewer, reason=reason, ip=ip
        )
    return kyc_application_request_info(
        application_id=application_id, reviewer=reviewer, message=reason, ip=ip
    )


class KycDocumentInline(admin.TabularInline[KycDocument, KycApplication]):
    model = KycDocument
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("kind", "download_link", "content_type", "size", "sha256", "uploaded_at")
    readonly_fields = fields
    verbose_name_plural = "Documents"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="File")
    def download_link(self, document: KycDocument) -> SafeString:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("kyc:document_download", args=[document.pk]),
            document.original_name or document.natural_download_name(),
        )


@admin.register(KycApplication)
class KycApplicationAdmin(admin.ModelAdmin[KycApplication]):
    list_display = (
        "id",
        "user_email",
        "legal_name",
        "country",
        "status",
        "submitted_at",
        "reviewed_at",
    )
    list_filter = ("status", "submitted_at")
    search_fields = ("user__email", "legal_name")
    list_select_related = ("user",)
    inlines = (KycDocumentInline,)
    actions = ("approve_selected", "reject_selected", "request_info_selected")
    change_form_template = "kyc/admin/change_form.html"
    fieldsets = (
        (
            "Applicant",
            {
                "fields": (
                    "user",
                    "legal_name",
                    "date_of_birth",
                    "address_line1",
                    "address_line2",
                    "city",
                    "postal_code",
                    "country",
                    "tax_id",
                )
            },
        ),
        (
            "Review",
            {"fields": ("status", "decision_reason", "submitted_at", "reviewed_by", "reviewed_at")},
        ),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in KycApplication._meta.fields if field.name != "id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("kyc.review_kycapplication")

    @admin.display(description="Email", ordering="user__email")
    def user_email(self, application: KycApplication) -> str:
        return application.user.email

    # --- single-application review page -----------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        review = path(
            "<int:object_id>/review/<str:decision>/",
            self.admin_site.admin_view(self.review_view),
            name="kyc_kycapplication_review",
        )
        return [review, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        application = self.get_object(request, object_id)
        decisions: list[tuple[str, str]] = []
        if application is not None and self.has_review_permission(request):
            decisions = [
                (key, verb)
                for key, (target, verb, _) in DECISIONS.items()
                if can_transition(application.status, target)
            ]
        context = {
            **(extra_context or {}),
            "review_decisions": decisions,
            # Nothing here is edited through the form, so offer no save buttons.
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def review_view(self, request: HttpRequest, object_id: int, decision: str) -> HttpResponse:
        if decision not in DECISIONS:
            raise Http404("Unknown decision.")
        if not self.has_review_permission(request):
            raise PermissionDenied
        application = get_object_or_404(KycApplication.objects.select_related("user"), pk=object_id)
        _, verb, needs_reason = DECISIONS[decision]
        change_url = reverse("admin:kyc_kycapplication_change", args=[application.pk])
        form = ReviewReasonForm(decision=decision) if needs_reason else None
        if request.method == "POST":
            if form is not None:
                form = ReviewReasonForm(request.POST, decision=decision)
            if form is None or form.is_valid():
                reason = form.cleaned_data["reason"] if form is not None else ""
                try:
                    _call_decision(
                        request, decision=decision, application_id=application.pk, reason=reason
                    )
                except DomainError as exc:
                    self.message_user(request, exc.message, level=messages.ERROR)
                    if form is not None and "reason" in exc.fields:
                        form.add_error("reason", exc.fields["reason"][0])
                else:
                    self.message_user(
                        request,
                        f"KYC application #{application.pk}: {verb.lower()} done.",
                        level=messages.SUCCESS,
                    )
                    return HttpResponseRedirect(change_url)
        return self._render_review_page(
            request,
            decision=decision,
            applications=[application],
            form=form,
            form_action=request.path,
            hidden=[],
        )

    def _render_review_page(
        self,
        request: HttpRequest,
        *,
        decision: str,
        applications: list[KycApplication],
        form: ReviewReasonForm | None,
        form_action: str,
        hidden: list[tuple[str, str]],
    ) -> TemplateResponse:
        _, verb, _ = DECISIONS[decision]
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb}: KYC application{'s' if len(applications) > 1 else ''}",
            "opts": self.opts,
            "verb": verb,
            "decision": decision,
            "applications": applications,
            "form": form,
            "form_action": form_action,
            "hidden": hidden,
        }
        return TemplateResponse(request, "kyc/admin/review.html", context)

    # --- bulk actions ----------------------------------------------------------------------

    def _apply_to_queryset(
        self,
        request: HttpRequest,
        queryset: QuerySet[KycApplication],
        *,
        decision: str,
        reason: str,
    ) -> None:
        done = 0
        for application_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                _call_decision(
                    request, decision=decision, application_id=application_id, reason=reason
                )
            except DomainError as exc:
                self.message_user(
                    request, f"Application #{application_id}: {exc.message}", level=messages.ERROR
                )
            else:
                done += 1
        if done:
            verb = DECISIONS[decision][1].lower()
            self.message_user(
                request, f"{verb.capitalize()}: {done} application(s).", level=messages.SUCCESS
            )

    def _reason_action(
        self, request: HttpRequest, queryset: QuerySet[KycApplication], *, decision: str
    ) -> TemplateResponse | None:
        form = ReviewReasonForm(decision=decision)
        if "apply" in request.POST:
            form = ReviewReasonForm(request.POST, decision=decision)
            if form.is_valid():
                reason = form.cleaned_data["reason"]
                if not reason.strip():
                    # Checked before the loop so that one missing reason gives one clear message.
                    form.add_error("reason", "Enter a reason: the applicant is shown it.")
                    self.message_user(
                        request, "A reason is required; nothing was changed.", level=messages.ERROR
                    )
                else:
                    self._apply_to_queryset(request, queryset, decision=decision, reason=reason)
                    return None
        hidden = [("action", f"{decision}_selected"), ("apply", "1")] + [
            (ACTION_CHECKBOX_NAME, str(pk)) for pk in queryset.values_list("pk", flat=True)
        ]
        return self._render_review_page(
            request,
            decision=decision,
            applications=list(queryset.select_related("user")),
            form=form,
            form_action=request.get_full_path(),
            hidden=hidden,
        )

    @admin.action(description="Approve selected applications", permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[KycApplication]) -> None:
        self._apply_to_queryset(request, queryset, decision="approve", reason="")

    @admin.action(description="Reject selected applications…", permissions=["review"])
    def reject_selected(
        self, request: HttpRequest, queryset: QuerySet[KycApplication]
    ) -> TemplateResponse | None:
        return self._reason_action(request, queryset, decision="reject")

    @admin.action(description="Request more information…", permissions=["review"])
    def request_info_selected(
        self, request: HttpRequest, queryset: QuerySet[KycApplication]
    ) -> TemplateResponse | None:
        return self._reason_action(request, queryset, decision="request_info")
