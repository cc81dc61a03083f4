"""REST API for orders: place, list, get (by id or client_order_id), cancel, replace.

Thin: parse with an input serializer, call one service or selector, serialise. Every lookup is
scoped to the caller, so another user's order is `404 order_not_found`, never 403. Decimal
formatting is described in `apps.instruments.apis`.

Idempotency: `client_order_id` is optional. Sent, it makes the request safe to retry: the same id
with the same parameters returns the original order (`200` instead of `201`), with different
parameters `422 idempotency_key_reused`. Omitted, the server generates a UUID (and a retry places
a second order), so apps should always send one.
"""

import uuid
from decimal import Decimal
from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.common.errors import Forbidden, NotFound
from apps.common.http import client_ip
from apps.common.throttling import OrderBurstThrottle, OrderSustainedThrottle
from apps.instruments.apis import (
    DecimalInputField,
    ScaledDecimalField,
    decimal_string,
    error_responses,
    scale_places,
)
from apps.orders import selectors, services
from apps.orders.models import Order, OrderEvent, OrderStatus, OrderType, Side, TimeInForce
from apps.orders.pagination import NewestFirstCursorPagination

# Printable ASCII without "/" and spaces: the id must fit in a URL path segment.
CLIENT_ORDER_ID_REGEX = r"^[\x21-\x2e\x30-\x7e]{1,64}$"


def request_user(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):
        raise Forbidden("Sign in first.", code="not_authenticated")
    return user


# --- serializers -------------------------------------------------------------------------------


class OrderEventOutput(serializers.ModelSerializer[OrderEvent]):
    class Meta:
        model = OrderEvent
        fields = ("kind", "from_status", "to_status", "created_at")
        read_only_fields = fields


class PendingReplaceOutput(serializers.Serializer[Any]):
    qty = serializers.CharField(allow_null=True)
    limit_price = serializers.CharField(allow_null=True)
    stop_price = serializers.CharField(allow_null=True)


class OrderOutput(serializers.ModelSerializer[Order]):
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    currency = serializers.CharField(source="instrument.currency", read_only=True)
    type = serializers.ChoiceField(choices=OrderType.choices, source="order_type", read_only=True)
    qty = ScaledDecimalField(scale="quantity", source="quantity")
    limit_price = ScaledDecimalField(scale="price", allow_null=True)
    stop_price = ScaledDecimalField(scale="price", allow_null=True)
    protection_price = ScaledDecimalField(
        scale="price",
        allow_null=True,
        help_text="Market and stop orders: the worst price they can execute at (collar).",
    )
    filled_qty = ScaledDecimalField(scale="quantity", source="filled_quantity")
    cancelled_qty = ScaledDecimalField(scale="quantity", source="cancelled_quantity")
    filled_avg_price = ScaledDecimalField(
        scale="price", source="average_fill_price", allow_null=True
    )
    filled_notional = ScaledDecimalField(scale="money")
    commission = ScaledDecimalField(scale="money")
    pending_action = serializers.CharField(
        read_only=True, help_text='"cancel" or "replace" while one is in flight, else "".'
    )
    pending_replace = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields: tuple[str, ...] = (
            "id",
            "client_order_id",
            "symbol",
            "currency",
            "side",
            "type",
            "time_in_force",
            "qty",
            "limit_price",
            "stop_price",
            "protection_price",
            "status",
            "filled_qty",
            "cancelled_qty",
            "filled_avg_price",
            "filled_notional",
            "commission",
            "reject_reason",
            "cancel_reason",
            "pending_action",
            "pending_replace",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(PendingReplaceOutput(allow_null=True))
    def get_pending_replace(self, order: Order) -> dict[str, Any] | None:
        pending = order.pending_replace
        if not pending or order.pending_action != "replace":
            return None

        def fmt(key: str, scale: str) -> str | None:
            raw = pending.get(key)
            return None if raw is None else decimal_string(Decimal(raw), scale_places(order, scale))

        return {
            "qty": fmt("quantity", "quantity"),
            "limit_price": fmt("limit_price", "price"),
            "stop_price": fmt("stop_price", "price"),
        }


class OrderDetailOutput(OrderOutput):
    events = OrderEventOutput(many=True, read_only=True)

    class Meta(OrderOutput.Meta):
        fields = (*OrderOutput.Meta.fields, "events")
        read_only_fields = fields


class OrderInput(serializers.Serializer[Any]):
    symbol = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Side.choices)
    type = serializers.ChoiceField(choices=OrderType.choices)
    time_in_force = serializers.ChoiceField(choices=TimeInForce.choices)
    qty = DecimalInputField(help_text="A multiple of the instrument's lot size.")
    limit_price = DecimalInputField(
        required=False, allow_null=True, help_text="limit and stop_limit orders only."
    )
    stop_price = DecimalInputField(
        required=False, allow_null=True, help_text="stop and stop_limit orders only."
    )
    client_order_id = serializers.RegexField(
        CLIENT_ORDER_ID_REGEX,
        required=False,
        help_text=(
            "Your idempotency key, 1-64 printable ASCII characters without '/' or spaces. "
            "Retrying with the same id and parameters returns the original order (200); with "
            "other parameters 422 idempotency_key_reused. Omitted: the server generates a UUID "
            "(and a retry would place a second order)."
        ),
    )


class OrderReplaceInput(serializers.Serializer[Any]):
    qty = DecimalInputField(required=False)
    limit_price = DecimalInputField(required=False)
    stop_price = DecimalInputField(required=False)


class OrderQuery(serializers.Serializer[Any]):
    status = serializers.CharField(
        required=False,
        default="all",
        help_text=(
            "open, closed, all (default), or a comma-separated list of statuses: "
            + ", ".join(OrderStatus.values)
        ),
    )
    symbol = serializers.CharField(
        required=False, help_text="A symbol, or several separated by commas."
    )
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    after = serializers.DateTimeField(
        required=False, help_text="Created at or after (ISO 8601 date or date-time, inclusive)."
    )
    until = serializers.DateTimeField(
        required=False, help_text="Created before (ISO 8601 date or date-time, exclusive)."
    )

    def validate_status(self, value: str) -> list[str]:
        statuses: list[str] = []
        for part in (p.strip().lower() for p in value.split(",") if p.strip()):
            if part in selectors.ORDER_STATUS_GROUPS:
                statuses.extend(selectors.ORDER_STATUS_GROUPS[part])
            elif part in OrderStatus.values:
                statuses.append(part)
            else:
                raise serializers.ValidationError(
                    f"Unknown status {part!r}: use open, closed, all or "
                    + ", ".join(OrderStatus.values)
                    + "."
                )
        return statuses or list(OrderStatus.values)


# --- views -------------------------------------------------------------------------------------

ORDER_ID_PARAMETER = OpenApiParameter(
    "order_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The order's id."
)
# The defaults (per-user) plus the order-write limits.
ORDER_THROTTLES: list[type[BaseThrottle]] = [
    *cast(list[type[BaseThrottle]], api_settings.DEFAULT_THROTTLE_CLASSES),
    OrderBurstThrottle,
    OrderSustainedThrottle,
]


def _order_or_404(user: User, order_id: str) -> Order:
    order = selectors.order_for(user=user, order_id=order_id)
    if order is None:
        raise NotFound("That order does not exist.", code="order_not_found")
    return order


class OrderListCreateApi(generics.ListAPIView[Order]):
    serializer_class = OrderOutput
    pagination_class = NewestFirstCursorPagination
    throttle_classes = ORDER_THROTTLES

    @extend_schema(
        operation_id="orders_list",
        summary="The caller's orders, newest first (cursor pagination)",
        parameters=[OrderQuery],
        responses={200: OrderOutput(many=True), **error_responses(400, 401, 403, 404, 429)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Order]:
        query = OrderQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        symbols = [s for s in data.get("symbol", "").split(",") if s.strip()]
        return selectors.orders_for(
            user=request_user(self.request),
            statuses=data["status"],
            symbols=symbols or None,
            side=data.get("side"),
            after=data.get("after"),
            until=data.get("until"),
        )

    @extend_schema(
        operation_id="orders_create",
        summary="Place an order (idempotent on client_order_id)",
        request=OrderInput,
        responses={
            201: OpenApiResponse(OrderOutput, description="Order accepted (pending_new)"),
            200: OpenApiResponse(
                OrderOutput, description="Same client_order_id and parameters: the original"
            ),
            **error_responses(400, 401, 403, 422, 429),
        },
    )
    def post(self, request: Request) -> Response:
        data = OrderInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        order, created = services.order_place(
            user=request_user(request),
            request=services.OrderRequest(
                symbol=values["symbol"],
                side=values["side"],
                order_type=values["type"],
                time_in_force=values["time_in_force"],
                quantity=values["qty"],
                client_order_id=values.get("client_order_id") or str(uuid.uuid4()),
                limit_price=values.get("limit_price"),
                stop_price=values.get("stop_price"),
            ),
            ip=client_ip(request._request),
        )
        return Response(
            OrderOutput(order).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class OrderDetailApi(APIView):
    throttle_classes = ORDER_THROTTLES

    @extend_schema(
        operation_id="orders_retrieve",
        summary="One of the caller's orders, with its transition log",
        parameters=[ORDER_ID_PARAMETER],
        responses={200: OrderDetailOutput, **error_responses(401, 403, 404, 429)},
    )
    def get(self, request: Request, order_id: str) -> Response:
        order = selectors.order_for(user=request_user(request), order_id=order_id, with_events=True)
        if order is None:
            raise NotFound("That order does not exist.", code="order_not_found")
        return Response(OrderDetailOutput(order).data)

    @extend_schema(
        operation_id="orders_cancel",
        summary="Request cancellation of an open order (the matcher confirms asynchronously)",
        parameters=[ORDER_ID_PARAMETER],
        request=None,
        responses={
            202: OpenApiResponse(OrderOutput, description="Cancel requested"),
            **error_responses(401, 403, 404, 409, 429),
        },
    )
    def delete(self, request: Request, order_id: str) -> Response:
        user = request_user(request)
        order = services.order_cancel(
            user=user, order_id=_order_or_404(user, order_id).pk, ip=client_ip(request._request)
        )
        return Response(OrderOutput(order).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="orders_replace",
        summary="Modify an open limit/stop order's quantity or prices (asynchronous)",
        parameters=[ORDER_ID_PARAMETER],
        request=OrderReplaceInput,
        responses={
            202: OpenApiResponse(OrderOutput, description="Replace requested"),
            **error_responses(400, 401, 403, 404, 409, 429),
        },
    )
    def patch(self, request: Request, order_id: str) -> Response:
        user = request_user(request)
        order_pk = _order_or_404(user, order_id).pk
        data = OrderReplaceInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        order = services.order_replace(
            user=user,
            order_id=order_pk,
            quantity=values.get("qty"),
            limit_price=values.get("limit_price"),
            stop_price=values.get("stop_price"),
            ip=client_ip(request._request),
        )
        return Response(OrderOutput(order).data, status=status.HTTP_202_ACCEPTED)


class OrderByClientIdApi(APIView):
    @extend_schema(
        operation_id="orders_retrieve_by_client_order_id",
        summary="One of the caller's orders by its client_order_id",
        parameters=[OpenApiParameter("client_order_id", OpenApiTypes.STR, OpenApiParameter.PATH)],
        responses={200: OrderDetailOutput, **error_responses(401, 403, 404, 429)},
    )
    def get(self, request: Request, client_order_id: str) -> Response:
        order = selectors.order_for(
            user=request_user(request), client_order_id=client_order_id, with_events=True
        )
        if order is None:
            raise NotFound("That order does not exist.", code="order_not_found")
        return Response(OrderDetailOutput(order).data)
