from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

DIGITS = 24
PLACES = 8


class Position(models.Model):
    """Holdings of one user in one instrument.

    `quantity` is signed (negative only for accounts enabled for short selling); `held_quantity`
    is reserved by open sell orders so the same shares cannot be sold twice. `cost_basis` is the
    total cost of the open quantity including buy commissions (average cost method);
    `realized_pnl` accumulates (sell price - average cost) x quantity - sell commissions.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey(
        "instruments.Instrument", on_delete=models.PROTECT, related_name="+"
    )
    quantity = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0))
    held_quantity = models.DecimalField(
        max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0)
    )
    cost_basis = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0))
    realized_pnl = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "instrument"], name="position_unique"),
            models.CheckConstraint(condition=Q(held_quantity__gte=0), name="position_held_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.instrument_id} {self.quantity}"


class Fill(models.Model):
    """One side of one trade, as settled. A trade between two orders gives two fills."""

    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="fills")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    instrument = models.ForeignKey(
        "instruments.Instrument", on_delete=models.PROTECT, related_name="+"
    )
    side = models.CharField(max_length=4)
    liquidity = models.CharField(max_length=5)  # maker / taker
    price = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES)
    quantity = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES)
    notional = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES)
    commission = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0))
    realized_pnl = models.DecimalField(max_digits=DIGITS, decimal_places=PLACES, default=Decimal(0))
    shard = models.PositiveSmallIntegerField()
    engine_seq = models.BigIntegerField()
    executed_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-executed_at", "-id"]
        constraints = [
            # Settlement idempotency: one fill per order per matcher event.
            models.UniqueConstraint(
                fields=["shard", "engine_seq", "order"], name="fill_unique_per_event"
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="fill_quantity_gt_0"),
            models.CheckConstraint(
                condition=Q(notional=F("price") * F("quantity")), name="fill_notional_exact"
            ),
        ]
        indexes = [models.Index(fields=["user", "-executed_at"])]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity} @ {self.price}"
