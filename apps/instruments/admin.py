from typing import Any

from django.contrib import admin
from django.db import transaction
from django.forms import ModelForm
from django.http import HttpRequest

from apps.audit.services import audit_record
from apps.instruments.models import Instrument
from apps.instruments.services import instrument_snapshot


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin[Instrument]):
    list_display = (
        "symbol",
        "name",
        "asset_class",
        "currency",
        "tick_size",
        "lot_size",
        "calendar",
        "status",
        "reference_price",
        "updated_at",
    )
    list_filter = ("status", "asset_class", "calendar", "currency")
    search_fields = ("symbol", "name")
    ordering = ("symbol",)
    readonly_fields = ("created_at", "updated_at")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Instrument | None = None
    ) -> tuple[str, ...]:
        # Orders and positions refer to the symbol: it is fixed once created.
        if obj is not None:
            return ("symbol", "created_at", "updated_at")
        return ("created_at", "updated_at")

    def has_delete_permission(self, request: HttpRequest, obj: Instrument | None = None) -> bool:
        return False  # delist instead: history must keep pointing at the instrument

    def save_model(
        self, request: HttpRequest, obj: Instrument, form: ModelForm[Any], change: bool
    ) -> None:
        before = instrument_snapshot(Instrument.objects.get(pk=obj.pk)) if change else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit_record(
                action="instrument.updated" if change else "instrument.created",
                actor=request.user,
                obj=obj,
                before=before,
                after=instrument_snapshot(obj),
            )
