from typing import Any

from django import forms

from apps.kyc.countries import COUNTRY_CHOICES
from apps.kyc.models import ALLOWED_DOCUMENT_TYPES, KycDocumentKind
from apps.kyc.uploads import ALLOWED_TYPE_LABELS, format_megabytes, max_document_bytes

_REQUIRED_TO_SUBMIT = "Required before you submit."


class KycDraftForm(forms.Form):
    """Personal details. Nothing is required to save a draft; completeness is checked on submit
    by the service, so the user can fill the form in several sittings."""

    legal_name = forms.CharField(
        label="Legal name",
        max_length=200,
        required=False,
        help_text="Exactly as it appears on your identity document.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    date_of_birth = forms.DateField(
        label="Date of birth",
        required=False,
        help_text="You must be at least 18.",
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}, format="%Y-%m-%d"),
    )
    address_line1 = forms.CharField(
        label="Address",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "address-line1"}),
    )
    address_line2 = forms.CharField(
        label="Address line 2 (optional)",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "address-line2"}),
    )
    city = forms.CharField(
        label="City",
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "address-level2"}),
    )
    postal_code = forms.CharField(
        label="Postal code",
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "postal-code"}),
    )
    country = forms.ChoiceField(
        label="Country of residence",
        choices=[("", "Choose a country"), *COUNTRY_CHOICES],
        required=False,
        widget=forms.Select(attrs={"autocomplete": "country"}),
    )
    tax_id = forms.CharField(
        label="Tax ID",
        max_length=50,
        required=False,
        help_text="Your taxpayer identification number in your country of residence.",
    )

    def __init__(self, *args: Any, disabled: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.disabled = disabled
            if name != "address_line2" and not field.help_text and not disabled:
                field.help_text = _REQUIRED_TO_SUBMIT
            if field.help_text:
                # Matches the help element id that templates/form_fields.html renders.
                field.widget.attrs["aria-describedby"] = f"id_{name}_help"


class KycDocumentUploadForm(forms.Form):
    kind = forms.ChoiceField(label="Document type", choices=KycDocumentKind.choices)
    # Empty files reach the service, which explains the problem in the same words as the API.
    file = forms.FileField(
        label="File",
        allow_empty_file=True,
        widget=forms.ClearableFileInput(
            attrs={"accept": ",".join([*ALLOWED_DOCUMENT_TYPES, ".pdf", ".jpg", ".jpeg", ".png"])}
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "file"
        ].help_text = f"{ALLOWED_TYPE_LABELS}, up to {format_megabytes(max_document_bytes())}."
        self.fields["file"].widget.attrs["aria-describedby"] = "id_file_help"
