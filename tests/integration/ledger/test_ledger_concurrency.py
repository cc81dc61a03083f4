"""Row locks against the real database: threads, each with its own connection, race for cash."""

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import AccountKind, CashAccount, Hold, HoldReason, PostingKind
from apps.ledger.services import hold_place, house_account, ledger_post
from tests.integration.ledger.checks import assert_ledger_consistent
from tests.integration.ledger.factories import funded_account

pytestmark = pytest.mark.django_db(transaction=True)


def _race(workers: list[Callable[[], str]]) -> list[str]:
    """Start every worker at the same moment; return their outcomes."""
    barrier = threading.Barrier(len(workers))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(work: Callable[[], str]) -> None:
        try:
            barrier.wait(timeout=10)
            result = work()
        except Exception as exc:
            result = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    close_old_connections()
    assert len(outcomes) == len(workers), "a worker hung"
    return outcomes


def test_concurrent_holds_never_exceed_the_cash() -> None:
    account = funded_account(amount="500")  # covers exactly 5 holds of 100

    def place() -> str:
        try:
            hold_place(account=account.pk, amount=Decimal("100"), reason=HoldReason.ORDER)
        except InsufficientFunds as exc:
            return exc.code
        return "ok"

    outcomes = _race([place] * 16)
    assert outcomes.count("ok") == 5
    assert outcomes.count("insufficient_buying_power") == 11
    account.refresh_from_db()
    assert (account.balance, account.held) == (Decimal("500"), Decimal("500"))
    assert Hold.objects.filter(account=account).count() == 5
    assert_ledger_consistent()


def test_opposite_transfers_do_not_deadlock_and_never_overdraw() -> None:
    """A→B and B→A at once: with accounts locked by ascending id there is no lock cycle."""
    alice = funded_account(amount="30")
    bob = funded_account(amount="30")

    def transfer(source: CashAccount, target: CashAccount) -> Callable[[], str]:
        def work() -> str:
            try:
                ledger_post(
                    lines=[(target.pk, Decimal("7")), (source.pk, Decimal("-7"))],
                    kind=PostingKind.TRANSFER,
                )
            except InsufficientFunds as exc:
                return exc.code
            return "ok"

        return work

    outcomes = _race([transfer(alice, bob), transfer(bob, alice)] * 8)
    assert all(outcome in ("ok", "insufficient_funds") for outcome in outcomes), outcomes
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.balance >= 0
    assert bob.balance >= 0
    assert alice.balance + bob.balance == Decimal("60")
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    assert bank.balance == Decimal("-60")
    assert_ledger_consistent()
