import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

DIGITS = 24
PLACES = 8


class Side(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    MARKET = "market", "Market"
    LIMIT = "limit", "Limit"
    STOP = "stop", "Stop"
    STOP_LIMIT = "stop_limit", "Stop limit"


class TimeInForce(models.TextChoices):
    DAY = "day", "Day"
    GTC = "gtc", "Good till cancelled"
    IOC = "ioc", "Immediate or cancel"
    FOK = "fok", "Fill or kill"


class OrderStatus(models.TextChoices):
    PENDING_NEW = "pending_new", "Pending new"
    NEW = "new", "New"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    REJECTED = "rejected", "Rejected"


OPEN_STATUSES = (OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
FINAL_STATUSES = (
    OrderStatus.FILLED,
    OrderStatus.CANCELLED,
    OrderStatus.EXPIRED,
    OrderStatus.REJECTED,
)


class RiskTier(models.Model):
    """Pre-trade limits and commissions for a group of accounts, managed in the admin."""

    name = models.CharField(max_length=64, unique=True)
    max_order_quantity = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES)
    max_order_notional = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES)
    price_collar_pct = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        help_text="Max distance of a limit/stop price from the reference price, in %.",
    )
    market_buffer_pct = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        help_text="Market orders are priced at last price ± this % (and protected at that price).",
    )
    daily_order_limit = models.PositiveIntegerField()
    commission_bps = models.DecimalField(max_digits=8, decimal_places=4, default=Decimal(0))
    commission_minimum = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0)
    )
    is_default = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_risk_tier"
            ),
            models.CheckConstraint(condition=Q(max_order_quantity__gt=0), name="tier_qty_gt_0"),
            models.CheckConstraint(
                condition=Q(max_order_notional__gt=0), name="tier_notional_gt_0"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TradingProfile(models.Model):
    """Per-user trading settings: the risk tier (default tier when absent)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="trading_profile"
    )
    risk_tier = models.ForeignKey(RiskTier, on_delete=models.PROTECT)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.risk_tier_id}"


class Order(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    cash_account = models.ForeignKey(
        "ledger.CashAccount", on_delete=models.PROTECT, related_name="+"
    )
    instrument = models.ForeignKey(
        "instruments.Instrument", on_delete=models.PROTECT, related_name="+"
    )
    client_order_id = models.CharField(max_length=64)
    request_fingerprint = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=10, choices=OrderType.choices)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices)
    quantity = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES)
    limit_price = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, null=True, blank=True
    )
    stop_price = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, null=True, blank=True
    )
    # The price the matcher enforces for market/stop orders (their protection collar).
    protection_price = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, null=True, blank=True
    )
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING_NEW
    )
    filled_quantity = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0)
    )
    cancelled_quantity = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0)
    )
    filled_notional = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0)
    )
    average_fill_price = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, null=True, blank=True
    )
    commission = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0))
    reject_reason = models.CharField(max_length=64, blank=True)
    cancel_reason = models.CharField(max_length=32, blank=True)
    held_quantity = models.DecimalField(
        max_digits=DIGITS,
        decimal_places=PLACES,
        default=Decimal(0),
        help_text="Position quantity this sell order still reserves.",
    )
    shard = models.PositiveSmallIntegerField(default=0)
    pending_action = models.CharField(max_length=16, blank=True)  # cancel / replace in flight
    pending_replace = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "client_order_id"], name="order_client_id_unique"
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_quantity_gt_0"),
            models.CheckConstraint(
                condition=Q(filled_quantity__gte=0) & Q(cancelled_quantity__gte=0),
                name="order_fill_cancel_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=F("filled_quantity") + F("cancelled_quantity")),
                name="order_quantity_conserved",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["user", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} {self.instrument_id} ({self.status})"

    @property
    def open_quantity(self):  # type: ignore[no-untyped-def]
        return self.quantity - self.filled_quantity - self.cancelled_quantity


class OrderEvent(models.Model):
    """Every status change and fill of an order, in order (the audited transition log)."""

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=24)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    detail = models.JSONField(default=dict)
    shard = models.PositiveSmallIntegerField(null=True, blank=True)
    engine_seq = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind} {self.from_status}->{self.to_status}"


class OutboxCommand(models.Model):
    """Matcher commands written in the same transaction as the order change (transactional outbox).

    The relay publishes unpublished rows to the shard's input stream and then marks them; a crash
    in between re-publishes, and the matcher applies each `command_id` once.
    """

    id = models.BigAutoField(primary_key=True)
    command_id = models.CharField(max_length=256, unique=True)
    shard = models.PositiveSmallIntegerField()
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], condition=Q(published_at__isnull=True), name="outbox_unpublished"
            )
        ]

    def __str__(self) -> str:
        return self.command_id
