"""REST API: the caller's positions and fills (trade activity). Cash movements are the ledger's
`/activities/cash/`. Decimal formatting is described in `apps.instruments.apis`."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.errors import NotFound
from apps.instruments.apis import SYMBOL_PARAMETER, ScaledDecimalField, error_responses
from apps.orders.apis import request_user
from apps.orders.pagination import FillsCursorPagination
from apps.portfolio import selectors
from apps.portfolio.models import Fill


class PositionOutput(serializers.Serializer[Any]):
    symbol = serializers.CharField(read_only=True)
    currency = serializers.CharField(read_only=True)
    side = serializers.ChoiceField(choices=["long", "short"], read_only=True)
    qty = ScaledDecimalField(scale="quantity", source="quantity", help_text="Signed.")
    qty_held = ScaledDecimalField(
        scale="quantity", source="held_quantity", help_text="Reserved by open sell orders."
    )
    qty_available = ScaledDecimalField(
        scale="quantity", source="available_quantity", help_text="qty - qty_held (not below 0)."
    )
    avg_entry_price = ScaledDecimalField(
        scale="price",
        source="average_entry_price",
        allow_null=True,
        help_text="cost_basis / qty (commissions included), rounded to 8 places.",
    )
    cost_basis = ScaledDecimalField(scale="money")
    market_price = ScaledDecimalField(
        scale="price",
        allow_null=True,
        help_text="Last settled trade, else the instrument's reference price.",
    )
    market_value = ScaledDecimalField(scale="money", allow_null=True)
    unrealized_pl = ScaledDecimalField(
        scale="money", source="unrealized_pnl", allow_null=True, help_text="market_value - cost"
    )
    realized_pl = ScaledDecimalField(scale="money", source="realized_pnl")
    updated_at = serializers.DateTimeField(read_only=True)


class PositionListApi(APIView):
    @extend_schema(
        operation_id="positions_list",
        summary="The caller's open positions, valued at the last price",
        responses={200: PositionOutput(many=True), **error_responses(401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        positions = selectors.positions_for(user=request_user(request))
        return Response(PositionOutput(positions, many=True).data)


class PositionDetailApi(APIView):
    @extend_schema(
        operation_id="positions_retrieve",
        summary="The caller's open position in one instrument",
        parameters=[SYMBOL_PARAMETER],
        responses={200: PositionOutput, **error_responses(401, 403, 404, 429)},
    )
    def get(self, request: Request, symbol: str) -> Response:
        position = selectors.position_for(user=request_user(request), symbol=symbol)
        if position is None:
            raise NotFound(f"You have no open position in {symbol!r}.", code="position_not_found")
        return Response(PositionOutput(position).data)


class FillOutput(serializers.ModelSerializer[Fill]):
    order_id = serializers.UUIDField(read_only=True)
    client_order_id = serializers.CharField(source="order.client_order_id", read_only=True)
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    currency = serializers.CharField(source="instrument.currency", read_only=True)
    price = ScaledDecimalField(scale="price")
    qty = ScaledDecimalField(scale="quantity", source="quantity")
    notional = ScaledDecimalField(scale="money", help_text="price x qty")
    commission = ScaledDecimalField(scale="money")
    realized_pl = ScaledDecimalField(
        scale="money", source="realized_pnl", help_text="Sells: P&L realised by this fill."
    )

    class Meta:
        model = Fill
        fields = (
            "id",
            "order_id",
            "client_order_id",
            "symbol",
            "currency",
            "side",
            "liquidity",
            "price",
            "qty",
            "notional",
            "commission",
            "realized_pl",
            "executed_at",
        )
        read_only_fields = fields


class FillQuery(serializers.Serializer[Any]):
    symbol = serializers.CharField(
        required=False, help_text="A symbol, or several separated by commas."
    )
    order_id = serializers.UUIDField(required=False)
    after = serializers.DateTimeField(
        required=False, help_text="Executed at or after (ISO 8601, inclusive)."
    )
    until = serializers.DateTimeField(
        required=False, help_text="Executed before (ISO 8601, exclusive)."
    )


class FillListApi(generics.ListAPIView[Fill]):
    serializer_class = FillOutput
    pagination_class = FillsCursorPagination

    @extend_schema(
        operation_id="fills_list",
        summary="The caller's fills (executions), newest first (cursor pagination)",
        parameters=[FillQuery],
        responses={200: FillOutput(many=True), **error_responses(400, 401, 403, 404, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Fill]:
        query = FillQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        symbols = [s for s in data.get("symbol", "").split(",") if s.strip()]
        return selectors.fills_for(
            user=request_user(self.request),
            symbols=symbols or None,
            order_id=data.get("order_id"),
            after=data.get("after"),
            until=data.get("until"),
        )
