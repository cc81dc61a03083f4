"""Property test: random sequences of deposits, transfers, fees, holds, releases and consumptions
against a simple in-memory model of the ledger.

After every operation the database agrees with the model (including which operations are
refused); after every sequence each posting balances (the deferred database triggers are fired),
each balance equals the sum of its lines, `held` equals the active holds, no customer or fee
account is negative or below its held amount, and all balances sum to zero.
"""

from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from apps.common.errors import InvalidInput, InvalidTransition
from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import AccountKind, CashAccount, Hold, HoldStatus, PostingKind
from apps.ledger.services import (
    cash_account_get_or_create,
    hold_consume,
    hold_place,
    hold_release,
    house_account,
    ledger_post,
)
from tests.factories import UserFactory
from tests.integration.ledger.checks import assert_ledger_consistent

pytestmark = pytest.mark.django_db

CUSTOMERS = 3
ZERO = Decimal(0)

amounts = st.one_of(
    st.integers(min_value=1, max_value=50_000).map(lambda cents: Decimal(cents) / 100),
    st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal(300), places=8),
)
customer = st.integers(min_value=0, max_value=CUSTOMERS - 1)
hold_index = st.integers(min_value=0, max_value=20)
# Debits, holds, releases and consumptions take a share of the customer's balance or of the
# hold's remaining amount, so that both sides of every limit are hit often (over 100 % fails).
share = st.integers(min_value=1, max_value=120)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), customer, amounts),
        st.tuples(st.just("withdraw"), customer, share),
        st.tuples(st.just("transfer"), customer, customer, share),
        st.tuples(st.just("fee"), customer, share),
        st.tuples(st.just("hold"), customer, share),
        st.tuples(st.just("release"), hold_index, st.none() | share),
        st.tuples(st.just("consume"), hold_index, share, st.just(ZERO) | amounts),
    ),
    min_size=10,
    max_size=30,
)
opening = st.lists(
    st.integers(min_value=0, max_value=2_000), min_size=CUSTOMERS, max_size=CUSTOMERS
)


def _share(left: Decimal, percent: int) -> Decimal:
    """percent % of `left`, rounded up to 8 places and at least 1e-8."""
    value = (left * percent / 100).quantize(Decimal("0.00000001"), rounding=ROUND_UP)
    return max(value, Decimal("0.00000001"))


@dataclass
class Model:
    balance: dict[int, Decimal] = field(default_factory=dict)
    holds: dict[int, tuple[int, Decimal, str]] = field(default_factory=dict)  # id→(acct, left, st)

    def held(self, account_id: int) -> Decimal:
        return sum(
            (
                left
                for acct, left, status in self.holds.values()
                if acct == account_id and status == HoldStatus.ACTIVE
            ),
            ZERO,
        )

    def available(self, account_id: int) -> Decimal:
        return self.balance[account_id] - self.held(account_id)


def _run(opening: list[int], ops: list[tuple[Any, ...]]) -> None:
    users = [UserFactory.create() for _ in range(CUSTOMERS)]
    customers = [cash_account_get_or_create(user=u, currency="USD") for u in users]
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    mm = house_account(kind=AccountKind.HOUSE_MARKET_MAKER, currency="USD")
    fee = house_account(kind=AccountKind.HOUSE_FEE, currency="USD")
    model = Model(balance={a.pk: ZERO for a in [*customers, bank, mm, fee]})
    hold_ids: list[int] = []
    ops = [("deposit", i, Decimal(units)) for i, units in enumerate(opening) if units] + ops

    def move(debit: CashAccount, credit: CashAccount, amount: Decimal) -> None:
        model.balance[debit.pk] -= amount
        model.balance[credit.pk] += amount

    for op in ops:
        name = op[0]
        if name == "deposit":
            _, i, amount = op
            ledger_post(lines=[(bank, -amount), (customers[i], amount)], kind=PostingKind.DEPOSIT)
            move(bank, customers[i], amount)
        elif name in ("withdraw", "fee", "transfer"):
            if name == "transfer":
                _, i, j, percent = op
                target = customers[j]
            else:
                _, i, percent = op
                target = bank if name == "withdraw" else fee
            source = customers[i]
            amount = _share(model.balance[source.pk] or Decimal(1), percent)
            ok = source == target or model.available(source.pk) >= amount
            try:
                ledger_post(lines=[(source, -amount), (target, amount)], kind=PostingKind.TRANSFER)
            except InsufficientFunds:
                assert not ok
                if amount <= model.balance[source.pk]:
                    event("debit refused: would dip into held cash")
            else:
                assert ok
                move(source, target, amount)
        elif name == "hold":
            event("hold")
            _, i, percent = op
            amount = _share(model.balance[customers[i].pk] or Decimal(1), percent)
            ok = model.available(customers[i].pk) >= amount
            try:
                hold = hold_place(account=customers[i], amount=amount, reason="order")
            except InsufficientFunds:
                assert not ok
            else:
                assert ok
                hold_ids.append(hold.pk)
                model.holds[hold.pk] = (customers[i].pk, amount, HoldStatus.ACTIVE)
        elif name == "release" and hold_ids:
            _, k, percent = op
            hold_id = hold_ids[k % len(hold_ids)]
            acct, left, status = model.holds[hold_id]
            amount = None if percent is None else _share(left or Decimal(1), percent)
            try:
                hold_release(hold=hold_id, amount=amount)
            except InvalidTransition:
                assert status != HoldStatus.ACTIVE
                assert amount is not None
            except InvalidInput:
                assert status == HoldStatus.ACTIVE
                assert amount is not None
                assert amount > left
            else:
                event("released")
                if status == HoldStatus.ACTIVE:
                    left -= left if amount is None else amount
                    model.holds[hold_id] = (acct, left, status if left else HoldStatus.RELEASED)
                else:
                    assert amount is None
        elif name == "consume" and hold_ids:
            _, k, percent, extra = op
            hold_id = hold_ids[k % len(hold_ids)]
            acct, left, status = model.holds[hold_id]
            amount = _share(left or Decimal(1), percent)
            account = CashAccount.objects.get(pk=acct)
            lines = [(account, -(amount + extra)), (mm, amount)]
            if extra:
                lines.append((fee, extra))
            try:
                hold_consume(hold=hold_id, amount=amount, lines=lines, kind=PostingKind.TRADE)
            except InvalidTransition:
                assert status != HoldStatus.ACTIVE
            except InvalidInput as exc:
                assert exc.code == "hold_amount_exceeded"  # noqa: PT017
                assert status == HoldStatus.ACTIVE
                assert amount > left
            except InsufficientFunds:
                assert status == HoldStatus.ACTIVE
                assert amount <= left
                assert model.balance[acct] - (amount + extra) < model.held(acct) - amount
            else:
                event("consumed")
                assert status == HoldStatus.ACTIVE
                assert amount <= left
                assert model.balance[acct] - (amount + extra) >= model.held(acct) - amount
                left -= amount
                model.holds[hold_id] = (acct, left, status if left else HoldStatus.CONSUMED)
                model.balance[acct] -= amount + extra
                model.balance[mm.pk] += amount
                model.balance[fee.pk] += extra

        # After every operation the database agrees with the model.
        for account in CashAccount.objects.filter(pk__in=model.balance):
            assert account.balance == model.balance[account.pk]
            assert account.held == model.held(account.pk)
            if account.kind in (AccountKind.CUSTOMER, AccountKind.HOUSE_FEE):
                assert ZERO <= account.held <= account.balance
    for hold in Hold.objects.filter(pk__in=model.holds):
        _, left, status = model.holds[hold.pk]
        assert (hold.amount, hold.status) == (left, status)
        assert hold.original_amount == hold.amount + hold.consumed_amount + hold.released_amount


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(opening=opening, ops=operations)
def test_random_operation_sequences_keep_the_ledger_consistent(
    opening: list[int], ops: list[tuple[Any, ...]]
) -> None:
    with transaction.atomic():
        _run(opening, ops)
        assert_ledger_consistent()  # fires the deferred "posting balances" triggers now
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        transaction.set_rollback(True)
