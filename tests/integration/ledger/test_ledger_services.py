"""The ledger services: balanced postings, overdraft rules, holds and their exact arithmetic."""

from decimal import Decimal

import pytest
from django.db import transaction

from apps.audit.models import AuditEvent
from apps.common.errors import DomainError, InvalidInput, InvalidTransition
from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import (
    AccountKind,
    CashAccount,
    Hold,
    HoldReason,
    HoldStatus,
    Posting,
    PostingKind,
    PostingLine,
)
from apps.ledger.selectors import cash_available
from apps.ledger.services import (
    cash_account_get_or_create,
    cash_account_set_trading_blocked,
    hold_consume,
    hold_place,
    hold_release,
    house_account,
    ledger_post,
)
from tests.factories import StaffFactory, UserFactory
from tests.integration.ledger.factories import funded_account

pytestmark = pytest.mark.django_db

D = Decimal


def _mm(currency: str = "USD") -> CashAccount:
    return house_account(kind=AccountKind.HOUSE_MARKET_MAKER, currency=currency)


def test_posting_moves_money_records_running_balances_and_audits() -> None:
    alice = funded_account(amount="100.00")
    bob = funded_account(amount="5")
    posting = ledger_post(
        lines=[(alice, D("-30.5")), (bob.pk, D("30.5"))],
        kind=PostingKind.TRANSFER,
        reference_type="tests.transfer",
        reference_id=7,
        memo="rent",
    )
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert (alice.balance, bob.balance) == (D("69.5"), D("35.5"))
    lines = {line.account_id: line for line in posting.lines.all()}
    assert lines[alice.pk].amount == D("-30.5")
    assert lines[alice.pk].balance_after == D("69.5")
    assert lines[bob.pk].balance_after == D("35.5")
    assert lines[alice.pk].currency == "USD"
    event = AuditEvent.objects.filter(action="ledger.posted", object_id=str(posting.pk)).get()
    assert event.after is not None
    assert event.after["reference_id"] == "7"
    assert {line["amount"] for line in event.after["lines"]} == {"-30.5", "30.5"}


def test_caller_instances_are_refreshed_after_posting() -> None:
    alice = funded_account(amount="10")
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    ledger_post(lines=[(bank, D("-2")), (alice, D("2"))], kind=PostingKind.DEPOSIT)
    assert alice.balance == D("12")
    assert bank.balance == D("-12")


@pytest.mark.parametrize(
    ("amounts", "code"),
    [
        ([D("-10"), D("9.99")], "posting_unbalanced"),
        ([D("-10")], "posting_too_short"),
        ([D("0"), D("0")], "zero_amount"),
        ([D("-0.000000001"), D("0.000000001")], "invalid_precision"),
        ([-10.0, 10.0], "invalid_input"),
        ([D("NaN"), D("NaN")], "invalid_input"),
        ([D("-1e20"), D("1e20")], "invalid_input"),
    ],
)
def test_invalid_postings_are_refused_and_write_nothing(amounts: list[object], code: str) -> None:
    alice = funded_account(amount="100")
    mm = _mm()
    accounts = [alice, mm]
    before = (Posting.objects.count(), PostingLine.objects.count())
    with pytest.raises(InvalidInput) as caught:
        ledger_post(
            lines=list(zip(accounts, amounts, strict=False)),  # type: ignore[arg-type]
            kind=PostingKind.ADJUSTMENT,
        )
    assert caught.value.code == code
    assert (Posting.objects.count(), PostingLine.objects.count()) == before
    alice.refresh_from_db()
    assert alice.balance == D("100")


def test_lines_must_balance_per_currency() -> None:
    usd = funded_account(amount="50")
    eur = funded_account(user=usd.owner, amount="50", currency="EUR")
    with pytest.raises(InvalidInput) as caught:
        ledger_post(lines=[(usd, D("-10")), (eur, D("10"))], kind=PostingKind.TRANSFER)
    assert caught.value.code == "posting_unbalanced"
    assert "EUR, USD" in caught.value.message


def test_customer_cannot_be_overdrawn_but_house_bank_and_market_maker_can() -> None:
    alice = funded_account(amount="20")
    mm = _mm()
    with pytest.raises(InsufficientFunds) as caught:
        ledger_post(lines=[(alice, D("-20.01")), (mm, D("20.01"))], kind=PostingKind.TRADE)
    assert caught.value.code == "insufficient_funds"
    assert "20 available" in caught.value.message
    # Exactly everything is fine; the market maker can then go below zero.
    ledger_post(lines=[(alice, D("-20")), (mm, D("20"))], kind=PostingKind.TRADE)
    ledger_post(lines=[(mm, D("-120")), (alice, D("120"))], kind=PostingKind.TRADE)
    mm.refresh_from_db()
    alice.refresh_from_db()
    assert mm.balance == D("-100")
    assert alice.balance == D("120")
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    assert bank.balance == D("-20")


def test_fee_account_cannot_go_negative() -> None:
    alice = funded_account(amount="5")
    fee = house_account(kind=AccountKind.HOUSE_FEE, currency="USD")
    with pytest.raises(InsufficientFunds):
        ledger_post(lines=[(fee, D("-1")), (alice, D("1"))], kind=PostingKind.FEE)


def test_a_debit_may_not_dip_into_held_cash() -> None:
    alice = funded_account(amount="100")
    hold_place(account=alice, amount=D("80"), reason=HoldReason.ORDER)
    assert cash_available(account=alice) == D("20")
    with pytest.raises(InsufficientFunds):
        ledger_post(lines=[(alice, D("-20.01")), (_mm(), D("20.01"))], kind=PostingKind.FEE)
    ledger_post(lines=[(alice, D("-20")), (_mm(), D("20"))], kind=PostingKind.FEE)
    alice.refresh_from_db()
    assert (alice.balance, alice.held) == (D("80"), D("80"))


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (HoldReason.ORDER, "insufficient_buying_power"),
        (HoldReason.WITHDRAWAL, "insufficient_funds"),
    ],
)
def test_hold_needs_available_cash(reason: str, code: str) -> None:
    alice = funded_account(amount="100")
    hold_place(account=alice, amount=D("60"), reason=HoldReason.ORDER)
    with pytest.raises(InsufficientFunds) as caught:
        hold_place(account=alice, amount=D("40.01"), reason=reason)
    assert caught.value.code == code
    hold_place(account=alice, amount=D("40"), reason=reason)
    alice.refresh_from_db()
    assert alice.held == alice.balance == D("100")
    assert Hold.objects.filter(account=alice).count() == 2


def test_hold_then_partial_fill_then_cancel_is_exact() -> None:
    """hold 100 → a fill spends 60 → the order is cancelled → the remaining 40 is released."""
    alice = funded_account(amount="150")
    mm = _mm()
    fee = house_account(kind=AccountKind.HOUSE_FEE, currency="USD")
    hold = hold_place(
        account=alice,
        amount=D("100"),
        reason=HoldReason.ORDER,
        reference_type="orders.order",
        reference_id=42,
    )
    posting = hold_consume(
        hold=hold,
        amount=D("60"),
        lines=[(alice, D("-61")), (mm, D("60")), (fee, D("1"))],
        kind=PostingKind.TRADE,
        reference_type="orders.order",
        reference_id=42,
    )
    alice.refresh_from_db()
    assert (alice.balance, alice.held) == (D("89"), D("40"))
    assert hold.amount == D("40")
    assert hold.status == HoldStatus.ACTIVE
    audit = AuditEvent.objects.get(action="ledger.posted", object_id=str(posting.pk))
    assert audit.after is not None
    assert audit.after["hold"] == {"id": hold.pk, "consumed": "60", "released": "0"}

    hold_release(hold=hold)
    hold.refresh_from_db()
    alice.refresh_from_db()
    assert (alice.balance, alice.held) == (D("89"), D("0"))
    assert (hold.status, hold.amount) == (HoldStatus.RELEASED, D("0"))
    assert (hold.consumed_amount, hold.released_amount) == (D("60"), D("40"))
    # Releasing everything again is a harmless no-op; an explicit amount is refused.
    hold_release(hold=hold)
    with pytest.raises(InvalidTransition):
        hold_release(hold=hold, amount=D("1"))


def test_hold_fully_consumed_ends_consumed() -> None:
    alice = funded_account(amount="100")
    hold = hold_place(account=alice, amount=D("100"), reason=HoldReason.WITHDRAWAL)
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    hold_consume(
        hold=hold.pk,
        amount=D("100"),
        lines=[(alice, D("-100")), (bank, D("100"))],
        kind=PostingKind.WITHDRAWAL,
    )
    hold.refresh_from_db()
    alice.refresh_from_db()
    assert (hold.status, hold.amount, hold.consumed_amount) == (
        HoldStatus.CONSUMED,
        D("0"),
        D("100"),
    )
    assert (alice.balance, alice.held) == (D("0"), D("0"))
    with pytest.raises(InvalidTransition):
        hold_consume(
            hold=hold,
            amount=D("1"),
            lines=[(alice, D("-1")), (bank, D("1"))],
            kind=PostingKind.WITHDRAWAL,
        )


def test_consume_with_release_of_the_remainder() -> None:
    alice = funded_account(amount="100")
    hold = hold_place(account=alice, amount=D("50"), reason=HoldReason.ORDER)
    hold_consume(
        hold=hold,
        amount=D("30"),
        lines=[(alice, D("-30")), (_mm(), D("30"))],
        kind=PostingKind.TRADE,
        release_remainder=True,
    )
    hold.refresh_from_db()
    alice.refresh_from_db()
    assert (hold.status, hold.consumed_amount, hold.released_amount) == (
        HoldStatus.RELEASED,
        D("30"),
        D("20"),
    )
    assert (alice.balance, alice.held) == (D("70"), D("0"))


def test_consumption_may_spend_more_than_held_only_from_available_cash() -> None:
    alice = funded_account(amount="100")
    hold = hold_place(account=alice, amount=D("90"), reason=HoldReason.ORDER)
    # Spending 95 against a 90 hold needs 5 of the 10 available: fine.
    hold_consume(
        hold=hold, amount=D("90"), lines=[(alice, D("-95")), (_mm(), D("95"))], kind="trade"
    )
    alice.refresh_from_db()
    assert (alice.balance, alice.held) == (D("5"), D("0"))


def test_consume_refusals_leave_everything_unchanged() -> None:
    alice = funded_account(amount="100")
    hold = hold_place(account=alice, amount=D("50"), reason=HoldReason.ORDER)
    mm = _mm()
    with pytest.raises(InvalidInput) as more_than_held:
        hold_consume(
            hold=hold, amount=D("51"), lines=[(alice, D("-51")), (mm, D("51"))], kind="trade"
        )
    assert more_than_held.value.code == "hold_amount_exceeded"
    with pytest.raises(InvalidInput) as mismatch:
        hold_consume(
            hold=hold, amount=D("50"), lines=[(alice, D("-10")), (mm, D("10"))], kind="trade"
        )
    assert mismatch.value.code == "hold_consume_mismatch"
    with pytest.raises(InsufficientFunds):
        hold_consume(
            hold=hold,
            amount=D("50"),
            lines=[(alice, D("-100.01")), (mm, D("100.01"))],
            kind="trade",
        )
    hold.refresh_from_db()
    alice.refresh_from_db()
    assert (hold.amount, alice.balance, alice.held) == (D("50"), D("100"), D("50"))
    assert not Posting.objects.filter(kind="trade").exists()


def test_partial_release_and_over_release() -> None:
    alice = funded_account(amount="10")
    hold = hold_place(account=alice, amount=D("10"), reason=HoldReason.ORDER)
    hold_release(hold=hold, amount=D("2.5"))
    alice.refresh_from_db()
    assert (hold.amount, hold.status, alice.held) == (D("7.5"), HoldStatus.ACTIVE, D("7.5"))
    with pytest.raises(InvalidInput) as caught:
        hold_release(hold=hold, amount=D("7.51"))
    assert caught.value.code == "hold_amount_exceeded"
    hold_release(hold=hold, amount=D("7.5"))
    assert hold.status == HoldStatus.RELEASED


def test_services_compose_with_an_outer_transaction_that_rolls_back() -> None:
    alice = funded_account(amount="100")
    lines_before = PostingLine.objects.count()

    def callers_transaction() -> None:
        with transaction.atomic():
            hold = hold_place(account=alice, amount=D("10"), reason=HoldReason.ORDER)
            hold_consume(
                hold=hold, amount=D("10"), lines=[(alice, D("-10")), (_mm(), D("10"))], kind="trade"
            )
            raise RuntimeError("the caller's own step failed")

    with pytest.raises(RuntimeError):
        callers_transaction()
    alice.refresh_from_db()
    assert (alice.balance, alice.held) == (D("100"), D("0"))
    assert PostingLine.objects.count() == lines_before
    assert not Hold.objects.exists()


def test_accounts_are_get_or_create_and_validated() -> None:
    user = UserFactory.create()
    first = cash_account_get_or_create(user=user, currency="usd")
    assert cash_account_get_or_create(user=user, currency="USD") == first
    assert first.kind == AccountKind.CUSTOMER
    assert house_account(kind=AccountKind.HOUSE_FEE, currency="USD") == house_account(
        kind="house_fee", currency="usd"
    )
    with pytest.raises(InvalidInput):
        house_account(kind=AccountKind.CUSTOMER, currency="USD")
    with pytest.raises(InvalidInput):
        cash_account_get_or_create(user=user, currency="US")


def test_trading_block_is_audited() -> None:
    staff = StaffFactory.create()
    account = funded_account(amount="1")
    with pytest.raises(DomainError):
        cash_account_set_trading_blocked(account_id=account.pk, blocked=True, actor=staff)
    cash_account_set_trading_blocked(
        account_id=account.pk, blocked=True, reason="Margin call", actor=staff
    )
    account.refresh_from_db()
    assert account.trading_blocked
    assert account.trading_blocked_reason == "Margin call"
    cash_account_set_trading_blocked(account_id=account.pk, blocked=False, actor=staff)
    account.refresh_from_db()
    assert not account.trading_blocked
    assert AuditEvent.objects.filter(action__startswith="ledger.trading_").count() == 2
