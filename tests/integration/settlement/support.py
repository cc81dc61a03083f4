"""Helpers for settlement tests: an in-process matching engine fed from the outbox."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.accounts.models import User
from apps.instruments.models import Instrument
from apps.matching.engine import Engine, Event, command_from_dict
from apps.orders.models import OutboxCommand
from apps.orders.services import OrderRequest, order_place
from apps.settlement.services import BatchResult, settlement_apply_batch

_client_ids = itertools.count(1)


def plain(value: Decimal) -> Decimal:
    return Decimal(format(value.normalize(), "f"))


class EngineDriver:
    """What the relay + matcher + settlement consumer do, in-process and synchronously: the
    unpublished outbox commands go to a real `Engine` in id order (the relay's order), and its
    events are settled with `settlement_apply_batch`."""

    def __init__(self, shard: int = 0) -> None:
        self.engine = Engine()
        self.shard = shard
        self.ts = 1_760_000_000_000_000_000  # ns, advanced by 1 ms per command
        self.events: list[Event] = []

    def _tick(self) -> int:
        self.ts += 1_000_000
        return self.ts

    def add_instrument(self, instrument: Instrument) -> None:
        events = self.engine.add_instrument(
            self._tick(), instrument.symbol, plain(instrument.tick_size), plain(instrument.lot_size)
        )
        self.settle(events)

    def settle(self, events: list[Event]) -> BatchResult:
        self.events.extend(events)
        return settlement_apply_batch(shard=self.shard, events=events)

    def pump(self, *, settle: bool = True) -> list[Event]:
        """Publish every pending outbox command to the engine, settle the events (unless
        `settle` is false: the caller hands them to settlement some other way)."""
        rows = list(OutboxCommand.objects.filter(published_at__isnull=True).order_by("id"))
        events: list[Event] = []
        for row in rows:
            data: dict[str, Any] = dict(row.payload)
            data["ts"] = self._tick()
            events.extend(self.engine.process(command_from_dict(data)))
        if rows:
            OutboxCommand.objects.filter(pk__in=[r.pk for r in rows]).update(
                published_at=timezone.now()
            )
        if events and settle:
            self.settle(events)
        return events


def place(
    user: User,
    *,
    side: str,
    qty: str,
    price: str | None = None,
    symbol: str = "ACME",
    order_type: str = "limit",
    tif: str = "gtc",
    stop: str | None = None,
) -> Any:
    order, _ = order_place(
        user=user,
        request=OrderRequest(
            symbol=symbol,
            side=side,
            order_type=order_type,
            time_in_force=tif,
            quantity=Decimal(qty),
            client_order_id=f"t-{next(_client_ids)}",
            limit_price=None if price is None else Decimal(price),
            stop_price=None if stop is None else Decimal(stop),
        ),
    )
    return order
