"""REST API: instruments and quotes, plus the decimal fields every trading endpoint uses.

Decimal strings
---------------
Money and quantities are JSON strings, never numbers. Outputs keep their exact value (the
database holds 8 decimal places; computed averages are rounded half-even to 8) with trailing zeros
trimmed, but never below the natural scale of the field:

* prices (limit, stop, fill, last, bid/ask, average prices): the instrument's tick size places
  (tick 0.01: ``"100.00"``, ``"100.015"`` for an average);
* quantities: the lot size places (lot 1: ``"10"``; lot 0.0001: ``"0.5000"``);
* money (notional, commission, cost basis, market value, P&L): the currency's minor units
  (USD: ``"1001.00"``, ``"50.005"``).

Inputs accept strings (or JSON integers); a JSON number with a fraction is refused, because a
float cannot carry a price exactly.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import NotFound
from apps.instruments.calendars import session_open
from apps.instruments.models import (
    AssetClass,
    Instrument,
    InstrumentStatus,
)
from apps.ledger.currencies import CURRENCY_DECIMALS
from apps.orders.selectors import instrument_last_trade

DIGITS = 24
PLACES = 8
_EIGHT_PLACES = Decimal(1).scaleb(-PLACES)

# The error body of every endpoint, as the schema component "Error" (built with
# inline_serializer because a serializer class cannot declare a field named "fields").
ERROR_SERIALIZER = inline_serializer(
    "Error",
    {
        "code": serializers.CharField(help_text="Machine-readable reason."),
        "message": serializers.CharField(),
        "fields": serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text="Validation errors per input field (400 only).",
        ),
    },
)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Invalid input (`fields` names the culprits)",
        401: "Not signed in",
        403: "Not allowed (e.g. session not verified with the authenticator)",
        404: "Not found (also for another user's objects)",
        409: "Not possible in the object's current state",
        422: "Refused by pre-trade risk or a reused client_order_id",
        429: "Rate limited: retry after the `Retry-After` header's seconds",
    }
    return {s: OpenApiResponse(ERROR_SERIALIZER, description=descriptions[s]) for s in statuses}


def places_of(step: Decimal) -> int:
    """Decimal places of a tick or lot size: 0.01 -> 2, 1 -> 0, 0.0001 -> 4."""
    exponent = step.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else PLACES


def decimal_string(value: Decimal, places: int) -> str:
    """Exact value, rounded half-even to 8 places at most, trimmed to no fewer than `places`."""
    d = Decimal(value)
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -PLACES:
        d = d.quantize(_EIGHT_PLACES, rounding=ROUND_HALF_EVEN)
    d = d.normalize()
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -places:
        d = d.quantize(Decimal(1).scaleb(-places))
    if d.is_zero():
        d = d.copy_abs()
    return format(d, "f")


def scale_places(obj: Any, scale: str) -> int:
    """Places for `scale` (price / quantity / money) of an object carrying an instrument."""
    instrument = obj if isinstance(obj, Instrument) else obj.instrument
    if scale == "price":
        return places_of(instrument.tick_size)
    if scale == "quantity":
        return places_of(instrument.lot_size)
    if scale == "money":
        return CURRENCY_DECIMALS.get(instrument.currency, 2)
    if scale == "exact":
        return 0
    raise ValueError(f"unknown scale {scale!r}")


class ScaledDecimalField(serializers.DecimalField):
    """Read-only decimal string at the natural scale of its kind (see the module docstring).

    The object being serialised (or its `instrument` attribute) supplies the tick/lot size and
    currency."""

    def __init__(self, *, scale: str, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", DIGITS)
        kwargs.setdefault("decimal_places", PLACES)
        kwargs.setdefault("coerce_to_string", True)
        kwargs["read_only"] = True
        self.scale = scale
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return (super().get_attribute(instance), scale_places(instance, self.scale))

    def to_representation(self, value: Any) -> Any:
        amount, places = value
        return None if amount is None else decimal_string(amount, places)


class DecimalInputField(serializers.DecimalField):
    """A decimal string (or JSON integer) with at most 8 places; floats are refused."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", DIGITS)
        kwargs.setdefault("decimal_places", PLACES)
        kwargs.setdefault("coerce_to_string", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, float):
            raise serializers.ValidationError(
                'Send decimals as strings, e.g. "100.25".', code="invalid"
            )
        value: Decimal = super().to_internal_value(data)
        return value


# --- instruments -------------------------------------------------------------------------------


class InstrumentOutput(serializers.ModelSerializer[Instrument]):
    tick_size = ScaledDecimalField(scale="exact", help_text="Every price is a multiple of it.")
    lot_size = ScaledDecimalField(scale="exact", help_text="Every quantity is a multiple of it.")
    tradable = serializers.BooleanField(source="is_tradable", read_only=True)
    session_open = serializers.SerializerMethodField(
        help_text="Whether the instrument's regular session is open now."
    )

    class Meta:
        model = Instrument
        fields = (
            "symbol",
            "name",
            "asset_class",
            "currency",
            "tick_size",
            "lot_size",
            "status",
            "tradable",
            "calendar",
            "session_open",
        )
        read_only_fields = fields

    def get_session_open(self, instrument: Instrument) -> bool:
        now = self.context.get("now") or timezone.now()
        return session_open(instrument.calendar, now)


class InstrumentQuery(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=InstrumentStatus.choices, required=False)
    asset_class = serializers.ChoiceField(choices=AssetClass.choices, required=False)


def _instrument_or_404(symbol: str) -> Instrument:
    instrument = Instrument.objects.filter(symbol=symbol.strip().upper()).first()
    if instrument is None:
        raise NotFound(f"There is no instrument {symbol!r}.", code="instrument_not_found")
    return instrument


class InstrumentListApi(generics.ListAPIView[Instrument]):
    serializer_class = InstrumentOutput
    pagination_class = None

    @extend_schema(
        operation_id="instruments_list",
        summary="Instruments (all but delisted ones unless `status` is given), by symbol",
        parameters=[InstrumentQuery],
        responses={200: InstrumentOutput(many=True), **error_responses(400, 401, 403, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Instrument]:
        query = InstrumentQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        instruments = Instrument.objects.order_by("symbol")
        status = query.validated_data.get("status")
        if status:
            instruments = instruments.filter(status=status)
        else:
            instruments = instruments.exclude(status=InstrumentStatus.DELISTED)
        if query.validated_data.get("asset_class"):
            instruments = instruments.filter(asset_class=query.validated_data["asset_class"])
        return instruments

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "now": timezone.now()}


SYMBOL_PARAMETER = OpenApiParameter(
    "symbol", OpenApiTypes.STR, OpenApiParameter.PATH, description="Instrument symbol, any case."
)


class InstrumentDetailApi(APIView):
    @extend_schema(
        operation_id="instruments_retrieve",
        summary="One instrument by symbol",
        parameters=[SYMBOL_PARAMETER],
        responses={200: InstrumentOutput, **error_responses(401, 403, 404, 429)},
    )
    def get(self, request: Request, symbol: str) -> Response:
        return Response(InstrumentOutput(_instrument_or_404(symbol)).data)


# --- quotes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quote:
    instrument: Instrument
    last_price: Decimal | None
    last_price_source: str | None  # "trade" / "reference"
    last_trade_at: dt.datetime | None
    bid_price: Decimal | None
    bid_size: Decimal | None
    ask_price: Decimal | None
    ask_size: Decimal | None
    session_open: bool
    as_of: dt.datetime

    @property
    def symbol(self) -> str:
        return self.instrument.symbol

    @property
    def currency(self) -> str:
        return self.instrument.currency


def instrument_quote(*, instrument: Instrument, now: dt.datetime | None = None) -> Quote:
    """Last trade price (else the reference price) and the best bid/offer.

    The matching worker publishes BBO changes on pub/sub only (``md:<SYMBOL>``) and keeps no
    latest-quote store the web process could read, so bid/ask are null until it does.
    """
    now = now or timezone.now()
    last = instrument_last_trade(instrument=instrument)
    if last is not None:
        price, source, at = last.price, "trade", last.executed_at
    elif instrument.reference_price is not None:
        price, source, at = instrument.reference_price, "reference", None
    else:
        price, source, at = None, None, None
    return Quote(
        instrument=instrument,
        last_price=price,
        last_price_source=source,
        last_trade_at=at,
        bid_price=None,
        bid_size=None,
        ask_price=None,
        ask_size=None,
        session_open=session_open(instrument.calendar, now),
        as_of=now,
    )


class QuoteOutput(serializers.Serializer[Quote]):
    symbol = serializers.CharField(read_only=True)
    currency = serializers.CharField(read_only=True)
    last_price = ScaledDecimalField(
        scale="price",
        allow_null=True,
        help_text="Last settled trade, else the instrument's reference price; null if neither.",
    )
    last_price_source = serializers.ChoiceField(
        choices=["trade", "reference"], allow_null=True, read_only=True
    )
    last_trade_at = serializers.DateTimeField(allow_null=True, read_only=True)
    bid_price = ScaledDecimalField(scale="price", allow_null=True)
    bid_size = ScaledDecimalField(scale="quantity", allow_null=True)
    ask_price = ScaledDecimalField(scale="price", allow_null=True)
    ask_size = ScaledDecimalField(scale="quantity", allow_null=True)
    session_open = serializers.BooleanField(read_only=True)
    as_of = serializers.DateTimeField(read_only=True)


class QuoteApi(APIView):
    @extend_schema(
        operation_id="quotes_retrieve",
        summary="Last price and best bid/offer of an instrument (prices as decimal strings)",
        parameters=[SYMBOL_PARAMETER],
        responses={200: QuoteOutput, **error_responses(401, 403, 404, 429)},
    )
    def get(self, request: Request, symbol: str) -> Response:
        quote = instrument_quote(instrument=_instrument_or_404(symbol))
        return Response(QuoteOutput(quote).data)
