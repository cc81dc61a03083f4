"""HTML pages for the applicant, and the access-checked document download (owner or staff)."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.common.errors import DomainError, InvalidTransition, NotFound
from apps.common.http import client_ip
from apps.kyc.forms import KycDocumentUploadForm, KycDraftForm
from apps.kyc.models import KycApplication, KycDocumentKind, KycStatus
from apps.kyc.selectors import (
    kyc_application_for,
    kyc_document_for_download,
    kyc_documents_for,
    kyc_missing_document_kinds,
    trading_eligibility,
)
from apps.kyc.services import (
    DRAFT_FIELDS,
    kyc_application_save_draft,
    kyc_application_submit,
    kyc_document_upload,
    kyc_document_view_record,
)
from apps.kyc.transitions import is_editable


def _request_user(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


def _draft_initial(application: KycApplication | None) -> dict[str, Any]:
    if application is None:
        return {}
    return {name: getattr(application, name) for name in DRAFT_FIELDS}


def _apply_domain_error(form: forms.Form, exc: DomainError, *, default_field: str | None) -> None:
    """Show a service error next to the field it concerns (or at the top of the form)."""
    placed = False
    for name, field_messages in exc.fields.items():
        if name in form.fields:
            for message in field_messages:
                form.add_error(name, message)
            placed = True
    if not placed:
        form.add_error(default_field, exc.message)


def _render_page(
    request: HttpRequest,
    *,
    draft_form: KycDraftForm | None = None,
    upload_form: KycDocumentUploadForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _request_user(request)
    application = kyc_application_for(user=user)
    current_status = application.status if application else KycStatus.DRAFT
    editable = is_editable(current_status)
    if draft_form is None:
        draft_form = KycDraftForm(initial=_draft_initial(application), disabled=not editable)
    if upload_form is None and editable:
        upload_form = KycDocumentUploadForm()
    missing_kinds = kyc_missing_document_kinds(application=application)
    context = {
        "application": application,
        "status": current_status,
        "status_label": KycStatus(current_status).label,
        "editable": editable,
        "draft_form": draft_form,
        "upload_form": upload_form,
        "documents": kyc_documents_for(application=application),
        "missing_documents": [KycDocumentKind(kind).label for kind in missing_kinds],
        "eligibility": trading_eligibility(user=user),
        "email_verified": user.email_verified,
    }
    return render(request, "kyc/application.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def application_view(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _render_page(request)
    user = _request_user(request)
    form = KycDraftForm(request.POST)
    if form.is_valid():
        try:
            kyc_application_save_draft(user=user, data=form.cleaned_data, ip=client_ip(request))
        except InvalidTransition as exc:
            # The page no longer shows the form (e.g. reviewed in another tab): say why at the top.
            messages.error(request, exc.message)
            return redirect("kyc:application")
        except DomainError as exc:
            _apply_domain_error(form, exc, default_field=None)
        else:
            messages.success(request, "Your details were saved.")
            return redirect("kyc:application")
    return _render_page(request, draft_form=form, status=400)


@login_required
@require_POST
def document_upload_view(request: HttpRequest) -> HttpResponse:
    user = _request_user(request)
    form = KycDocumentUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            document = kyc_document_upload(
                user=user,
                kind=form.cleaned_data["kind"],
                uploaded_file=form.cleaned_data["file"],
                ip=client_ip(request),
            )
        except InvalidTransition as exc:
            messages.error(request, exc.message)
            return redirect("kyc:application")
        except DomainError as exc:
            _apply_domain_error(form, exc, default_field="file")
        else:
            messages.success(request, f"{document.get_kind_display()} uploaded.")
            return redirect("kyc:application")
    return _render_page(request, upload_form=form, status=400)


@login_required
@require_POST
def submit_view(request: HttpRequest) -> HttpResponse:
    user = _request_user(request)
    try:
        kyc_application_submit(user=user, ip=client_ip(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("kyc:application")
    messages.success(request, "Thank you. Your application was submitted for review.")
    return redirect("kyc:application")


@login_required
@require_GET
def document_download_view(request: HttpRequest, document_id: int) -> FileResponse:
    user = _request_user(request)
    try:
        document = kyc_document_for_download(document_id=document_id, requester=user)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if document.application.user_id != user.pk:
        kyc_document_view_record(document=document, viewer=user, ip=client_ip(request))
    try:
        handle = document.file.open("rb")
    except FileNotFoundError as exc:
        raise Http404("The document file is missing from storage.") from exc
    response = FileResponse(
        handle,
        as_attachment=True,
        filename=document.natural_download_name(),
        content_type=document.content_type,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    # If a browser renders it anyway, a hostile PDF/image gets no script or network access.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
