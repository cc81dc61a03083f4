"""Settlement: apply the matching engine's events to orders, fills, cash and positions.

`settlement_apply_batch(shard=..., events=...)` applies a list of engine event tuples (layouts in
`apps.matching.engine.EVENT_FIELDS`) in ONE transaction and advances the shard's
`SettlementCursor` in the same transaction:

- Idempotent: events with seq <= the cursor were applied before and are skipped, so re-delivery
  after a crash (between commit and XACK, or a replayed output stream) changes nothing.
- In order: the first new event must be cursor + 1 and the rest contiguous, else
  `SettlementGap` (the output stream lost events, e.g. trimmed before they were settled: an
  operator must look; skipping would lose money movements).
- All or nothing: any error rolls the whole batch back, cursor included.

What each event does (order ids are `str(Order.id)`, quantities lots, prices ticks, converted
exactly with the instrument's grid):

- accepted: pending_new -> new.
- rejected: a new order -> rejected, holds and sell reservation released; a cancel or replace
  -> the pending action is cleared (a replace's extra hold released).
- trade: one `Fill` per order; filled quantity / notional / average price / status; commission
  per order = fee schedule on the cumulative notional minus what was already charged (so the
  total is the fee on the whole order, never more than was held); one balanced `trade` posting
  (buyer pays notional + fee out of the order's holds, seller gets notional - fee, the fee
  account both fees); positions at average cost (buys add notional + fee to the cost basis,
  sells realise proceeds - fee - average cost x quantity) and the seller's reservation
  consumed. A filled order gives back what is left of its holds.
- cancelled: cancelled quantity; when nothing remains the order is cancelled (expired for
  DAY expiry at session close), holds and reservation released; an STP decrement that leaves
  quantity open only releases the surplus.
- replaced: quantity / prices from the event, surplus hold or reservation released.
- triggered: logged on the order. Others: ignored.

Every status change writes an `OrderEvent` (with shard + engine seq) and an audit record.

Locks, in the platform order: the shard's cursor (only settlement takes it: it serialises two
consumers of one shard), cash accounts (ascending id) -> positions (ascending id) -> orders
(ascending id) -> holds (inside the ledger services) -> audit chain. Users and instruments that
fills will reference are share-locked (FOR KEY SHARE) before the audit lock, so the fills'
foreign-key checks never wait while this transaction holds the audit chain.
"""

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import audit_record
from apps.instruments.models import Instrument, InstrumentStatus
from apps.ledger.currencies import CURRENCY_DECIMALS
from apps.ledger.models import AccountKind, CashAccount, Hold, HoldStatus, PostingKind
from apps.ledger.services import (
    cash_accounts_lock,
    hold_consume,
    hold_release,
    house_account,
    ledger_post,
)
from apps.matching.engine import Event
from apps.matching.engine import Instrument as EngineInstrument
from apps.matching.engine import constants as ec
from apps.matching.protocol import shard_for
from apps.orders.models import (
    OPEN_STATUSES,
    Order,
    OrderEvent,
    OrderStatus,
    OrderType,
    OutboxCommand,
    RiskTier,
    Side,
    TimeInForce,
    TradingProfile,
)
from apps.orders.risk import Limits, commission
from apps.orders.selectors import FALLBACK_LIMITS
from apps.orders.services import ORDER_REFERENCE, OUTBOX_CHANNEL
from apps.portfolio.models import Fill, Position
from apps.settlement.bulk import AuditInput, audit_record_many, update_rows
from apps.settlement.models import SettlementCursor
from apps.settlement.sessions import last_session_close

log = logging.getLogger("apps.settlement")

ZERO = Decimal(0)
Q8 = Decimal("0.00000001")  # the 8 decimal places of every money / quantity column
TRADE_REFERENCE = "settlement.trade"
ORDER_OBJECT = "orders.order"

ORDER_FIELDS = [
    "status",
    "quantity",
    "limit_price",
    "stop_price",
    "filled_quantity",
    "cancelled_quantity",
    "filled_notional",
    "average_fill_price",
    "commission",
    "reject_reason",
    "cancel_reason",
    "held_quantity",
    "pending_action",
    "pending_replace",
    "updated_at",
]
POSITION_FIELDS = ["quantity", "held_quantity", "cost_basis", "realized_pnl", "updated_at"]


class SettlementError(Exception):
    """An event cannot be settled; the batch is rolled back and must be retried or fixed."""


class SettlementGap(SettlementError):
    """The events do not continue the shard's cursor: some were never delivered."""


@dataclass(frozen=True, slots=True)
class BatchResult:
    applied: int  # events applied now
    skipped: int  # events already applied before (seq <= cursor)
    last_seq: int  # the cursor after the batch
    trades: int


def _q8(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_HALF_EVEN)


def _order_uuid(order_id: Any) -> uuid.UUID | None:
    if not isinstance(order_id, str):
        return None
    try:
        return uuid.UUID(order_id)
    except ValueError:
        return None


def _tier_limits(tier: RiskTier) -> Limits:
    return Limits(**{f.name: getattr(tier, f.name) for f in fields(Limits)})


def _event_time(ts: Any, default: dt.datetime) -> dt.datetime:
    """The matcher's journal stamp (ns since the epoch) as an aware datetime."""
    if isinstance(ts, int) and ts > 0:
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts // 1000)
    return default


def settlement_cursor(*, shard: int) -> int:
    """Last engine seq settled for `shard` (0 before the first batch)."""
    row = SettlementCursor.objects.filter(pk=shard).values_list("last_seq", flat=True).first()
    return int(row) if row is not None else 0


def _cursor_locked(shard: int) -> SettlementCursor:
    cursor = SettlementCursor.objects.select_for_update().filter(pk=shard).first()
    if cursor is None:
        SettlementCursor.objects.bulk_create([SettlementCursor(shard=shard)], ignore_conflicts=True)
        cursor = SettlementCursor.objects.select_for_update().get(pk=shard)
    return cursor


def settlement_apply_batch(*, shard: int, events: Sequence[Event]) -> BatchResult:
    """Apply engine events of `shard` in one transaction (see the module docstring)."""
    ordered = sorted(events, key=lambda event: int(event[1]))
    with transaction.atomic():
        cursor = _cursor_locked(shard)
        last = cursor.last_seq
        fresh: list[Event] = []
        for event in ordered:
            seq = int(event[1])
            if seq <= last:
                continue
            if seq != last + 1:
                raise SettlementGap(
                    f"shard {shard}: event seq {seq} does not follow {last}; events "
                    f"{last + 1}..{seq - 1} were never delivered to settlement"
                )
            fresh.append(event)
            last = seq
        if not fresh:
            return BatchResult(0, len(events), cursor.last_seq, 0)
        batch = _Batch(shard=shard, events=fresh)
        batch.apply()
        cursor.last_seq = last
        cursor.save(update_fields=["last_seq", "updated_at"])
    return BatchResult(len(fresh), len(events) - len(fresh), last, batch.trades)


@dataclass(slots=True)
class _PendingCash:
    """Cash of consecutive fills of one buy order, not yet posted."""

    buy: Order
    first_seq: int
    last_seq: int = 0
    fills: int = 0
    amounts: defaultdict[int, Decimal] = field(default_factory=lambda: defaultdict(Decimal))


class _Batch:
    """The state of one batch: every row it touches is locked up front and changed in memory;
    orders, positions, fills, order events and the orders' audit records are written in bulk at
    the end. Ledger calls are made in event order (they need the running hold amounts)."""

    def __init__(self, *, shard: int, events: list[Event]) -> None:
        self.shard = shard
        self.events = events
        self.now = timezone.now()
        self.orders: dict[str, Order] = {}
        self.dirty_orders: dict[str, Order] = {}
        self.positions: dict[tuple[int, int], Position] = {}
        self.dirty_positions: dict[tuple[int, int], Position] = {}
        self.accounts: dict[int, CashAccount] = {}
        self.fee_accounts: dict[str, CashAccount] = {}
        self.holds: dict[str, list[Hold]] = {}
        self.instruments: dict[int, Instrument] = {}
        self.grids: dict[int, EngineInstrument] = {}
        self.limits: dict[int, Limits] = {}
        self.fills: list[Fill] = []
        self.order_events: list[OrderEvent] = []
        self.audits: list[AuditInput] = []
        self.pending_cash: _PendingCash | None = None
        self.trades = 0

    # ------------------------------------------------------------------ setup
    def apply(self) -> None:
        self._lock()
        handlers = {
            ec.EV_ACCEPTED: self._on_accepted,
            ec.EV_REJECTED: self._on_rejected,
            ec.EV_TRADE: self._on_trade,
            ec.EV_CANCELLED: self._on_cancelled,
            ec.EV_REPLACED: self._on_replaced,
            ec.EV_TRIGGERED: self._on_triggered,
        }
        for event in self.events:
            if event[0] != ec.EV_TRADE:
                self._post_cash()
            handler = handlers.get(event[0])
            if handler is not None:
                handler(event)
        self._post_cash()
        self._flush()

    def _lock(self) -> None:
        order_ids: set[str] = set()
        money: set[str] = set()  # orders whose cash, holds or reservation may change
        traded: set[str] = set()
        for event in self.events:
            kind = event[0]
            if kind == ec.EV_TRADE:
                order_ids.update((event[7], event[9]))
                money.update((event[7], event[9]))
                traded.update((event[7], event[9]))
            elif kind in (ec.EV_ACCEPTED, ec.EV_TRIGGERED):
                order_ids.add(event[4])
            elif kind in (ec.EV_CANCELLED, ec.EV_REPLACED, ec.EV_REJECTED):
                order_ids.add(event[4])
                money.add(event[4])
        uuids = [u for u in (_order_uuid(i) for i in order_ids) if u is not None]
        if not uuids:
            return
        rows = {
            str(pk): (account_id, user_id, instrument_id)
            for pk, account_id, user_id, instrument_id in Order.objects.filter(
                pk__in=uuids
            ).values_list("pk", "cash_account_id", "user_id", "instrument_id")
        }
        self.instruments = Instrument.objects.in_bulk({row[2] for row in rows.values()})
        money_rows = [rows[i] for i in money if i in rows]
        traded_rows = [rows[i] for i in traded if i in rows]
        account_ids = {row[0] for row in money_rows}
        for currency in sorted({self.instruments[row[2]].currency for row in traded_rows}):
            fee = house_account(kind=AccountKind.HOUSE_FEE, currency=currency)
            self.fee_accounts[currency] = fee
            account_ids.add(fee.pk)
        # 1. cash accounts, ascending id
        if account_ids:
            self.accounts = cash_accounts_lock(account_ids=account_ids)
            for currency, fee in list(self.fee_accounts.items()):
                self.fee_accounts[currency] = self.accounts[fee.pk]
        # 2. positions, ascending id (a buyer's first fill creates its position)
        pairs = {(row[1], row[2]) for row in money_rows}
        if pairs:
            self._lock_positions(pairs, create={(row[1], row[2]) for row in traded_rows})
        # 3. orders, ascending id
        for order in (
            Order.objects.select_for_update(of=("self",)).filter(pk__in=uuids).order_by("pk")
        ):
            self.orders[str(order.pk)] = order
        # Fills reference users and instruments: take their key-share locks now, before the
        # audit chain lock (see the module docstring).
        if traded_rows:
            user_ids = sorted({row[1] for row in traded_rows})
            instrument_ids = sorted({row[2] for row in traded_rows})
            with connection.cursor() as cursor:
                for table, ids in (
                    (User._meta.db_table, user_ids),
                    (Instrument._meta.db_table, instrument_ids),
                ):
                    cursor.execute(
                        f"SELECT 1 FROM {table} WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE",  # noqa: S608 - model table names
                        [ids],
                    )
        # 4. the buy orders' active holds, oldest first (the ledger locks each when used)
        buy_refs = [i for i in money if i in self.orders and self.orders[i].side == Side.BUY]
        if buy_refs:
            for hold in Hold.objects.filter(
                reference_type=ORDER_REFERENCE,
                reference_id__in=buy_refs,
                status=HoldStatus.ACTIVE,
            ).order_by("id"):
                self.holds.setdefault(hold.reference_id, []).append(hold)

    def _lock_positions(self, pairs: set[tuple[int, int]], *, create: set[tuple[int, int]]) -> None:
        match = Q()
        for user_id, instrument_id in pairs:
            match |= Q(user_id=user_id, instrument_id=instrument_id)
        existing = set(Position.objects.filter(match).values_list("user_id", "instrument_id"))
        missing = sorted(create - existing)
        if missing:
            Position.objects.bulk_create(
                [Position(user_id=u, instrument_id=i) for u, i in missing], ignore_conflicts=True
            )
        for position in Position.objects.select_for_update().filter(match).order_by("pk"):
            self.positions[(position.user_id, position.instrument_id)] = position

    # ------------------------------------------------------------------ helpers
    def _order(self, order_id: Any, seq: int, *, required: bool = False) -> Order | None:
        order = self.orders.get(order_id) if isinstance(order_id, str) else None
        if order is None:
            message = f"shard {self.shard} seq {seq}: unknown order {order_id!r}"
            if required:
                # A trade with an order we do not know would move shares and cash from
                # nowhere: stop rather than settle half of it.
                raise SettlementError(message)
            log.warning("%s (event ignored)", message)
        return order

    def _grid(self, instrument_id: int) -> EngineInstrument:
        grid = self.grids.get(instrument_id)
        if grid is None:
            inst = self.instruments[instrument_id]
            grid = EngineInstrument(inst.symbol, inst.tick_size, inst.lot_size)
            self.grids[instrument_id] = grid
        return grid

    def _places(self, order: Order) -> int:
        return CURRENCY_DECIMALS.get(self.instruments[order.instrument_id].currency, 2)

    def _limits(self, order: Order) -> Limits:
        limits = self.limits.get(order.user_id)
        if limits is None:
            self._load_limits({o.user_id for o in self.orders.values()})
            limits = self.limits[order.user_id]
        return limits

    def _load_limits(self, user_ids: set[int]) -> None:
        """The fee schedules (risk tiers) of all the batch's users in two queries - what
        `risk_limits_for` answers per user."""
        default = RiskTier.objects.filter(is_default=True).first()
        fallback = _tier_limits(default) if default is not None else FALLBACK_LIMITS
        self.limits.update(dict.fromkeys(user_ids, fallback))
        for profile in TradingProfile.objects.filter(user_id__in=user_ids).select_related(
            "risk_tier"
        ):
            self.limits[profile.user_id] = _tier_limits(profile.risk_tier)

    def _touch(self, order: Order) -> None:
        order.updated_at = self.now
        self.dirty_orders[str(order.pk)] = order

    def _position(self, order: Order) -> Position | None:
        return self.positions.get((order.user_id, order.instrument_id))

    def _touch_position(self, position: Position) -> None:
        position.updated_at = self.now
        self.dirty_positions[(position.user_id, position.instrument_id)] = position

    def _record(
        self,
        order: Order,
        kind: str,
        before: str,
        seq: int,
        *,
        audit_action: str | None = None,
        **detail: Any,
    ) -> None:
        """OrderEvent (always) + audit record (for status changes and fills)."""
        self.order_events.append(
            OrderEvent(
                order=order,
                kind=kind,
                from_status=before,
                to_status=order.status,
                detail=detail,
                shard=self.shard,
                engine_seq=seq,
            )
        )
        if audit_action:
            self.audits.append(
                AuditInput(
                    action=audit_action,
                    object_type=ORDER_OBJECT,
                    object_id=str(order.pk),
                    before={"status": before},
                    after={"status": order.status, "shard": self.shard, "seq": seq, **detail},
                )
            )

    def _open_quantity(self, order: Order) -> Decimal:
        return order.quantity - order.filled_quantity - order.cancelled_quantity

    def _check_open(self, order: Order, remaining_lots: int, seq: int) -> None:
        expected = self._grid(order.instrument_id).lots_to_qty(remaining_lots)
        if self._open_quantity(order) != expected:
            log.error(
                "shard %s seq %s: order %s open quantity %s differs from the matcher's %s",
                self.shard,
                seq,
                order.pk,
                self._open_quantity(order),
                expected,
            )

    # ------------------------------------------------------------------ holds and reservations
    def _active_holds(self, order: Order) -> list[Hold]:
        return [h for h in self.holds.get(str(order.pk), []) if h.status == HoldStatus.ACTIVE]

    def _held(self, order: Order) -> Decimal:
        """What the order's holds still cover, net of fills not yet posted."""
        held = sum((h.amount for h in self._active_holds(order)), ZERO)
        return max(held - self._pending_debit(order), ZERO)

    def _release_holds(self, order: Order, amount: Decimal | None, memo: str) -> None:
        """Release `amount` (None: everything) of the order's holds, newest first."""
        if self.pending_cash is not None:
            if self.pending_cash.buy is order and amount is None:
                self._post_cash(release_rest=True)  # spend and give back the rest in one step
                return
            self._post_cash()
        left = amount
        for hold in reversed(self._active_holds(order)):
            if left is not None and left <= 0:
                break
            part = None if left is None or left >= hold.amount else left
            released = hold.amount if part is None else part
            hold_release(hold=hold, amount=part, memo=memo)
            if left is not None:
                left -= released

    def _buy_requirement(self, order: Order) -> Decimal | None:
        """Cash the open part of a buy can still cost: its price (limit, or the protection price
        of market/stop orders) x open quantity + the commission still to charge."""
        open_qty = self._open_quantity(order)
        if open_qty <= 0:
            return ZERO
        if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            price = order.limit_price
        else:
            price = order.protection_price
        if price is None:
            return None
        notional = price * open_qty
        fee = commission(order.filled_notional + notional, self._limits(order), self._places(order))
        return notional + max(fee - order.commission, ZERO)

    def _release_surplus(self, order: Order, memo: str) -> None:
        if order.side == Side.BUY:
            need = self._buy_requirement(order)
            if need is None:
                return
            surplus = self._held(order) - need
            if surplus > 0:
                self._release_holds(order, surplus, memo)
        else:
            surplus = order.held_quantity - max(self._open_quantity(order), ZERO)
            if surplus > 0:
                self._unreserve(order, surplus)

    def _unreserve(self, order: Order, quantity: Decimal) -> None:
        """Give back `quantity` of the position a sell order reserved."""
        quantity = min(quantity, order.held_quantity)
        if quantity <= 0:
            return
        order.held_quantity -= quantity
        position = self._position(order)
        if position is not None:
            position.held_quantity = max(position.held_quantity - quantity, ZERO)
            self._touch_position(position)

    def _finish(self, order: Order, memo: str) -> None:
        """The order is final: nothing stays reserved for it, nothing is in flight."""
        if order.side == Side.BUY:
            self._release_holds(order, None, memo)
        self._unreserve(order, order.held_quantity)
        order.pending_action = ""
        order.pending_replace = None

    # ------------------------------------------------------------------ events
    def _on_accepted(self, event: Event) -> None:
        seq, order_id = event[1], event[4]
        order = self._order(order_id, seq)
        if order is None:
            return
        if order.status != OrderStatus.PENDING_NEW:
            log.warning(
                "shard %s seq %s: order %s accepted while %s",
                self.shard,
                seq,
                order_id,
                order.status,
            )
            return
        order.status = OrderStatus.NEW
        self._touch(order)
        self._record(order, "accepted", OrderStatus.PENDING_NEW, seq, audit_action="order.accepted")

    def _on_triggered(self, event: Event) -> None:
        _kind, seq, _ts, _symbol, order_id, _account, stop_price, trigger_price = event
        order = self._order(order_id, seq)
        if order is None:
            return
        grid = self._grid(order.instrument_id)
        self._record(
            order,
            "triggered",
            order.status,
            seq,
            stop_price=str(grid.ticks_to_price(stop_price)),
            trigger_price=str(grid.ticks_to_price(trigger_price)),
        )

    def _on_rejected(self, event: Event) -> None:
        _kind, seq, _ts, command, order_id, _symbol, reason = event
        order = self._order(order_id, seq) if isinstance(order_id, str) else None
        if order is None:
            if command in (ec.CMD_NEW_ORDER, ec.CMD_CANCEL, ec.CMD_REPLACE):
                log.warning("shard %s seq %s: %s rejected: %s", self.shard, seq, command, reason)
            return
        before = order.status
        if command == ec.CMD_NEW_ORDER:
            # A duplicate id is a late re-send of a command the matcher already applied (its
            # accepted event came first): the order itself is fine.
            if reason == ec.REJ_DUPLICATE_ORDER_ID or before != OrderStatus.PENDING_NEW:
                log.warning(
                    "shard %s seq %s: duplicate new_order for %s (%s) ignored",
                    self.shard,
                    seq,
                    order.pk,
                    reason,
                )
                return
            order.status = OrderStatus.REJECTED
            order.reject_reason = str(reason)[:64]
            self._finish(order, f"order {order.pk} rejected by the matcher")
            self._touch(order)
            self._record(
                order, "rejected", before, seq, audit_action="order.rejected", reason=reason
            )
        elif command == ec.CMD_CANCEL:
            if order.pending_action == "cancel":
                order.pending_action = ""
            self._touch(order)
            self._record(
                order,
                "cancel_rejected",
                before,
                seq,
                audit_action="order.cancel_rejected",
                reason=reason,
            )
        elif command == ec.CMD_REPLACE:
            extra_hold_id = (order.pending_replace or {}).get("extra_hold_id")
            if order.pending_action == "replace":
                order.pending_action = ""
            order.pending_replace = None
            if extra_hold_id:
                for hold in self._active_holds(order):
                    if hold.pk == extra_hold_id:
                        hold_release(hold=hold, memo=f"replace of order {order.pk} rejected")
            self._touch(order)
            self._record(
                order,
                "replace_rejected",
                before,
                seq,
                audit_action="order.replace_rejected",
                reason=reason,
            )

    def _on_cancelled(self, event: Event) -> None:
        _kind, seq, _ts, _symbol, order_id, _account, qty, remaining, reason = event
        order = self._order(order_id, seq)
        if order is None:
            return
        before = order.status
        order.cancelled_quantity += self._grid(order.instrument_id).lots_to_qty(qty)
        if remaining == 0:
            expired = reason == ec.CXL_EXPIRED
            order.status = OrderStatus.EXPIRED if expired else OrderStatus.CANCELLED
            order.cancel_reason = str(reason)[:32]
            self._finish(order, f"order {order.pk} {order.status}")
            kind = "expired" if expired else "cancelled"
        else:
            # Self-trade prevention decremented the order; it stays open with less quantity.
            self._release_surplus(order, f"order {order.pk} reduced")
            kind = "reduced"
        self._check_open(order, remaining, seq)
        self._touch(order)
        self._record(
            order,
            kind,
            before,
            seq,
            audit_action=f"order.{kind}",
            qty=str(self._grid(order.instrument_id).lots_to_qty(qty)),
            reason=reason,
        )

    def _on_replaced(self, event: Event) -> None:
        _kind, seq, _ts, _symbol, order_id, _account, qty, remaining, price, stop, kept = event
        order = self._order(order_id, seq)
        if order is None:
            return
        grid = self._grid(order.instrument_id)
        before = {
            "qty": str(order.quantity),
            "limit_price": None if order.limit_price is None else str(order.limit_price),
            "stop_price": None if order.stop_price is None else str(order.stop_price),
        }
        # The matcher's values are the truth (not what was asked): it applied them.
        order.quantity = grid.lots_to_qty(qty)
        if price is not None and order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            order.limit_price = grid.ticks_to_price(price)
        if stop is not None and order.order_type in (OrderType.STOP, OrderType.STOP_LIMIT):
            order.stop_price = grid.ticks_to_price(stop)
        if order.pending_action == "replace":
            order.pending_action = ""
        order.pending_replace = None
        self._release_surplus(order, f"order {order.pk} replaced")
        if order.side == Side.SELL:
            self._reserve_more(order)
        self._check_open(order, remaining, seq)
        self._touch(order)
        self._record(
            order,
            "replaced",
            order.status,
            seq,
            audit_action="order.replaced",
            before_values=before,
            qty=str(order.quantity),
            limit_price=None if order.limit_price is None else str(order.limit_price),
            stop_price=None if order.stop_price is None else str(order.stop_price),
            priority_kept=kept,
        )

    def _reserve_more(self, order: Order) -> None:
        """A sell whose quantity went up reserves what the position still has free."""
        position = self._position(order)
        want = self._open_quantity(order) - order.held_quantity
        if position is None or want <= 0:
            return
        free = position.quantity - position.held_quantity
        extra = min(want, free)
        if extra > 0:
            order.held_quantity += extra
            position.held_quantity += extra
            self._touch_position(position)

    # ------------------------------------------------------------------ trades
    def _on_trade(self, event: Event) -> None:
        (
            _kind,
            seq,
            ts,
            _symbol,
            price_ticks,
            qty_lots,
            aggressor,
            maker_id,
            _maker_account,
            taker_id,
            _taker_account,
            maker_remaining,
            taker_remaining,
        ) = event
        maker = self._order(maker_id, seq, required=True)
        taker = self._order(taker_id, seq, required=True)
        assert maker is not None
        assert taker is not None
        buy, sell = (taker, maker) if aggressor == ec.BUY else (maker, taker)
        if (
            buy.side != Side.BUY
            or sell.side != Side.SELL
            or buy.instrument_id != sell.instrument_id
        ):
            raise SettlementError(f"shard {self.shard} seq {seq}: trade sides do not match")
        grid = self._grid(buy.instrument_id)
        price = grid.ticks_to_price(price_ticks)
        qty = grid.lots_to_qty(qty_lots)
        notional = price * qty
        if _q8(notional) != notional:
            raise SettlementError(
                f"shard {self.shard} seq {seq}: notional {notional} needs >8 places"
            )
        buy_fee = self._buy_fee(buy, notional)
        sell_fee = self._sell_fee(sell, notional)
        self._move_cash(seq, buy, sell, notional, buy_fee, sell_fee)
        buy_pnl = self._position_trade(buy, qty, notional + buy_fee)
        sell_pnl = self._position_trade(sell, -qty, -(notional - sell_fee))
        executed_at = _event_time(ts, self.now)
        remaining = {str(maker.pk): maker_remaining, str(taker.pk): taker_remaining}
        for order, fee, pnl in ((buy, buy_fee, buy_pnl), (sell, sell_fee, sell_pnl)):
            self._apply_fill(
                order,
                seq=seq,
                price=price,
                qty=qty,
                notional=notional,
                fee=fee,
                realized=pnl,
                liquidity="maker" if order is maker else "taker",
                remaining=remaining[str(order.pk)],
                executed_at=executed_at,
            )
        self.trades += 1

    def _fee_total(self, order: Order, notional: Decimal) -> Decimal:
        """Commission due on the order's cumulative notional after this fill."""
        return commission(
            order.filled_notional + notional, self._limits(order), self._places(order)
        )

    def _buy_fee(self, order: Order, notional: Decimal) -> Decimal:
        fee = max(self._fee_total(order, notional) - order.commission, ZERO)
        held = self._held(order)
        if notional + fee <= held:
            return fee
        # More than the holds cover (the fee schedule changed since the order was placed):
        # the rest comes from available cash, and a fee that cannot be paid is capped rather
        # than blocking settlement. The notional itself is always covered by the hold.
        self._post_cash()
        held = self._held(order)
        account = CashAccount.objects.get(pk=order.cash_account_id)  # locked by this batch
        payable = held + max(account.balance - account.held, ZERO) - notional
        if payable >= fee:
            return fee
        capped = max(payable, ZERO).quantize(Decimal(1).scaleb(-self._places(order)), ROUND_FLOOR)
        log.warning("order %s: commission %s capped at %s (no cash)", order.pk, fee, capped)
        return capped

    def _sell_fee(self, order: Order, notional: Decimal) -> Decimal:
        # A sell's commissions never exceed its proceeds (a minimum fee on a tiny sale), so the
        # seller is never charged cash it may not have.
        unit = Decimal(1).scaleb(-self._places(order))
        cap = (order.filled_notional + notional).quantize(unit, rounding=ROUND_FLOOR)
        return max(min(self._fee_total(order, notional), cap) - order.commission, ZERO)

    def _move_cash(
        self,
        seq: int,
        buy: Order,
        sell: Order,
        notional: Decimal,
        buy_fee: Decimal,
        sell_fee: Decimal,
    ) -> None:
        """Buyer -(notional + fee), seller +(notional - fee), fee account +both fees.

        Consecutive fills of the same buy order (a buy sweeping several resting sells) become
        one posting: the lines accumulate here and `_post_cash` writes them when the next event
        is about anything else (or the batch ends).
        """
        pending = self.pending_cash
        if pending is not None and pending.buy is not buy:
            self._post_cash()
            pending = None
        if pending is None:
            pending = self.pending_cash = _PendingCash(buy=buy, first_seq=seq)
        currency = self.instruments[buy.instrument_id].currency
        amounts = pending.amounts
        amounts[buy.cash_account_id] -= notional + buy_fee
        amounts[sell.cash_account_id] += notional - sell_fee
        amounts[self.fee_accounts[currency].pk] += buy_fee + sell_fee
        pending.last_seq = seq
        pending.fills += 1

    def _pending_debit(self, order: Order) -> Decimal:
        pending = self.pending_cash
        if pending is None or pending.buy is not order:
            return ZERO
        return max(-pending.amounts[order.cash_account_id], ZERO)

    def _post_cash(self, *, release_rest: bool = False) -> None:
        """Write the pending trade posting; the buyer's part is taken from its order's holds,
        oldest first. `release_rest`: the order is done, give back what its holds have left
        in the same step."""
        pending = self.pending_cash
        if pending is None:
            return
        self.pending_cash = None
        buy = pending.buy
        lines = [(self.accounts[pk], amount) for pk, amount in pending.amounts.items() if amount]
        holds = self._active_holds(buy)
        if len(lines) < 2:  # a self-trade without fees moves no cash
            if release_rest:
                self._release_holds(buy, None, f"order {buy.pk} filled")
            return
        reference = f"{self.shard}:{pending.first_seq}"
        if pending.last_seq != pending.first_seq:
            reference += f"-{pending.last_seq}"
        memo = f"trade {reference}: order {buy.pk} buys ({pending.fills} fills)"
        need = max(-pending.amounts[buy.cash_account_id], ZERO)
        plan: list[tuple[Hold, Decimal]] = []
        for hold in holds:
            if need <= 0:
                break
            take = min(hold.amount, need)
            plan.append((hold, take))
            need -= take
        if not plan:
            ledger_post(
                lines=lines,
                kind=PostingKind.TRADE,
                reference_type=TRADE_REFERENCE,
                reference_id=reference,
                memo=memo,
            )
            if release_rest:
                self._release_holds(buy, None, f"order {buy.pk} filled")
            return
        # The posting consumes one hold; fills spanning several holds (an order whose size a
        # replace increased) first free their share of the later ones into available cash.
        for hold, take in plan[1:]:
            hold_release(hold=hold, amount=take, memo=f"spent by {memo}")
        if release_rest:
            for hold in holds[len(plan) :]:
                hold_release(hold=hold, memo=f"order {buy.pk} filled")
        hold_consume(
            hold=plan[0][0],
            amount=plan[0][1],
            lines=lines,
            kind=PostingKind.TRADE,
            reference_type=TRADE_REFERENCE,
            reference_id=reference,
            memo=memo,
            release_remainder=release_rest,
        )
        if release_rest:
            for hold, _take in plan[1:]:
                if hold.status == HoldStatus.ACTIVE:
                    hold_release(hold=hold, memo=f"order {buy.pk} filled")

    def _position_trade(self, order: Order, signed_qty: Decimal, cash: Decimal) -> Decimal:
        """Average-cost update of the order's position; returns the realized P&L.

        `cash` is what the trade cost the holder (buy: notional + fee; sell: minus the proceeds
        net of fee). The cost basis is signed the same way (negative for a short). A trade that
        reduces the position realizes (proceeds - average cost x closed quantity); one that
        crosses zero closes the old position and opens the rest in the new direction.
        """
        position = self.positions[(order.user_id, order.instrument_id)]
        quantity, basis = position.quantity, position.cost_basis
        realized = ZERO
        if quantity == 0 or (quantity > 0) == (signed_qty > 0):
            position.cost_basis = basis + cash
        else:
            closing = min(abs(signed_qty), abs(quantity))
            removed = basis if closing == abs(quantity) else _q8(basis * closing / abs(quantity))
            closing_cash = (
                cash if closing == abs(signed_qty) else _q8(cash * closing / abs(signed_qty))
            )
            realized = -(removed + closing_cash)
            position.cost_basis = basis - removed + (cash - closing_cash)
            position.realized_pnl += realized
        position.quantity = quantity + signed_qty
        if order.side == Side.SELL:
            used = min(abs(signed_qty), order.held_quantity)
            order.held_quantity -= used
            position.held_quantity = max(position.held_quantity - used, ZERO)
        self._touch_position(position)
        return realized

    def _apply_fill(
        self,
        order: Order,
        *,
        seq: int,
        price: Decimal,
        qty: Decimal,
        notional: Decimal,
        fee: Decimal,
        realized: Decimal,
        liquidity: str,
        remaining: int,
        executed_at: dt.datetime,
    ) -> None:
        before = order.status
        order.filled_quantity += qty
        order.filled_notional += notional
        order.commission += fee
        order.average_fill_price = _q8(order.filled_notional / order.filled_quantity)
        order.status = OrderStatus.FILLED if remaining == 0 else OrderStatus.PARTIALLY_FILLED
        if remaining == 0:
            self._finish(order, f"order {order.pk} filled")
        self._check_open(order, remaining, seq)
        self._touch(order)
        self.fills.append(
            Fill(
                order=order,
                user_id=order.user_id,
                instrument_id=order.instrument_id,
                side=order.side,
                liquidity=liquidity,
                price=price,
                quantity=qty,
                notional=notional,
                commission=fee,
                realized_pnl=realized,
                shard=self.shard,
                engine_seq=seq,
                executed_at=executed_at,
            )
        )
        self._record(
            order,
            "fill",
            before,
            seq,
            audit_action=f"order.{order.status}",
            price=str(price),
            qty=str(qty),
            commission=str(fee),
            liquidity=liquidity,
        )

    # ------------------------------------------------------------------ write
    def _flush(self) -> None:
        update_rows(Order, list(self.dirty_orders.values()), ORDER_FIELDS)
        update_rows(Position, list(self.dirty_positions.values()), POSITION_FIELDS)
        if self.fills:
            Fill.objects.bulk_create(self.fills)
        if self.order_events:
            OrderEvent.objects.bulk_create(self.order_events)
        audit_record_many(self.audits)


# --------------------------------------------------------------------------- DAY expiry


def session_close_enqueue(*, now: dt.datetime | None = None) -> list[str]:
    """Enqueue (through the outbox) an `end_of_session` command for every instrument whose
    calendar closed a session, so the matcher expires its DAY orders; settlement then marks
    them expired from the matcher's cancelled events. Returns the command ids newly enqueued.

    Idempotent: the command id is `eod:<SYMBOL>:<session date>`, unique in the outbox (and
    de-duplicated again by the matcher), so running this every minute enqueues each close once.
    Only the latest close counts: one end_of_session expires every DAY order resting then.

    The matcher expires every DAY order it holds when the command arrives, including one
    placed after the close on a 24/7 market (UTC midnight) before this ran. So a close is not
    enqueued while such an order is open - a DAY order is never expired before its own session
    ends; the older ones then expire at the next close. Running this every minute keeps that
    window short.
    """
    now = now or timezone.now()
    shards = int(getattr(settings, "MATCHER_SHARDS", 1))
    created: list[str] = []
    instruments = Instrument.objects.exclude(status=InstrumentStatus.DELISTED).order_by("symbol")
    for inst in instruments:
        close = last_session_close(inst.calendar, now)
        if close is None or inst.created_at > close[1]:
            continue
        day, closed_at = close
        command_id = f"eod:{inst.symbol}:{day.isoformat()}"
        if OutboxCommand.objects.filter(command_id=command_id).exists():
            continue
        too_new = Order.objects.filter(
            instrument=inst,
            time_in_force=TimeInForce.DAY,
            status__in=OPEN_STATUSES,
            created_at__gt=closed_at,
        ).exists()
        if too_new:
            log.warning(
                "%s: session close of %s postponed (DAY orders placed after it)", inst.symbol, day
            )
            continue
        with transaction.atomic():
            _row, new = OutboxCommand.objects.get_or_create(
                command_id=command_id,
                defaults={
                    "shard": shard_for(inst.symbol, shards),
                    "payload": {"command": "end_of_session", "symbol": inst.symbol, "ts": 0},
                },
            )
            if not new:
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"NOTIFY {OUTBOX_CHANNEL}")
            audit_record(
                action="settlement.session_close_enqueued",
                object_type="instruments.instrument",
                object_id=inst.symbol,
                after={"session": day.isoformat(), "closed_at": closed_at.isoformat()},
            )
        created.append(command_id)
    return created
