"""The database itself enforces the ledger's rules, whatever the client: raw SQL here."""

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.backends.utils import CursorWrapper

from apps.ledger.models import AccountKind, CashAccount, Posting, PostingLine
from apps.ledger.selectors import ledger_account_mismatches, ledger_is_balanced
from apps.ledger.services import house_account
from tests.integration.ledger.factories import funded_account


def _in_transaction(work: Callable[[CursorWrapper], object]) -> None:
    """Run raw SQL in one transaction (a savepoint inside a test's transaction)."""
    with transaction.atomic(), connection.cursor() as cursor:
        work(cursor)


def _insert_posting(cursor: CursorWrapper) -> int:
    cursor.execute(
        "INSERT INTO ledger_posting (kind, reference_type, reference_id, memo, created_at) "
        "VALUES ('adjustment', '', '', 'raw', now()) RETURNING id"
    )
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def _insert_line(cursor: CursorWrapper, posting_id: int, account: CashAccount, amount: str) -> None:
    cursor.execute(
        "INSERT INTO ledger_postingline (posting_id, account_id, amount, currency, balance_after)"
        " VALUES (%s, %s, %s, %s, 0)",
        [posting_id, account.pk, Decimal(amount), account.currency],
    )


# --- deferred balance check: the COMMIT fails -------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "amounts",
    [
        pytest.param(["-10", "9.99"], id="unbalanced"),
        pytest.param(["10"], id="single-line"),
        pytest.param([], id="no-lines"),
    ],
)
def test_commit_of_a_posting_that_does_not_balance_fails(amounts: list[str]) -> None:
    alice = funded_account(amount="100")
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    postings_before = Posting.objects.count()
    statements_done: list[bool] = []

    def write(cursor: CursorWrapper) -> None:
        posting_id = _insert_posting(cursor)
        for account, amount in zip([alice, bank], amounts, strict=False):
            _insert_line(cursor, posting_id, account, amount)
        statements_done.append(True)

    with pytest.raises(IntegrityError, match="ledger posting #"):
        _in_transaction(write)
    assert statements_done == [True]  # every statement succeeded: only the COMMIT refused
    assert Posting.objects.count() == postings_before
    assert ledger_is_balanced()


@pytest.mark.django_db(transaction=True)
def test_commit_of_a_balanced_raw_posting_succeeds_and_reconciliation_flags_it(
    ledger_unchecked: None,
) -> None:
    alice = funded_account(amount="100")
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    posting_ids: list[int] = []

    def write(cursor: CursorWrapper) -> None:
        posting_ids.append(_insert_posting(cursor))
        _insert_line(cursor, posting_ids[0], alice, "-1")
        _insert_line(cursor, posting_ids[0], bank, "1")

    _in_transaction(write)
    posting_id = posting_ids[0]
    assert PostingLine.objects.filter(posting_id=posting_id).count() == 2
    # Balanced, but written behind the services' back: the cached balances no longer match.
    mismatched = {mismatch.account_id for mismatch in ledger_account_mismatches()}
    assert mismatched == {alice.pk, bank.pk}
    assert not ledger_is_balanced()


@pytest.mark.django_db(transaction=True)
def test_a_committed_posting_cannot_be_extended_later(ledger_unchecked: None) -> None:
    alice = funded_account(amount="100")
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    posting = Posting.objects.get()

    def extend(cursor: CursorWrapper) -> None:
        # Even a balanced pair may not be slipped into an existing entry.
        _insert_line(cursor, posting.pk, alice, "-5")
        _insert_line(cursor, posting.pk, bank, "5")

    with pytest.raises(DatabaseError, match="is closed"):
        _in_transaction(extend)
    assert posting.lines.count() == 2


# --- immediate guards ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postingline SET amount = amount * 2",
        "DELETE FROM ledger_postingline",
        "UPDATE ledger_posting SET memo = 'edited'",
        "DELETE FROM ledger_posting",
    ],
)
def test_postings_and_lines_are_immutable(statement: str) -> None:
    funded_account(amount="100")
    with pytest.raises(DatabaseError, match="is immutable"):
        _in_transaction(lambda cursor: cursor.execute(statement))
    assert PostingLine.objects.count() == 2


@pytest.mark.django_db
def test_orm_update_and_delete_are_refused_too() -> None:
    funded_account(amount="100")
    with pytest.raises(DatabaseError), transaction.atomic():
        PostingLine.objects.update(amount=Decimal("1"))
    with pytest.raises(DatabaseError), transaction.atomic():
        Posting.objects.all().delete()


@pytest.mark.django_db
def test_a_line_must_carry_its_accounts_currency() -> None:
    alice = funded_account(amount="100")

    def write(cursor: CursorWrapper) -> None:
        cursor.execute(
            "INSERT INTO ledger_postingline "
            "(posting_id, account_id, amount, currency, balance_after) "
            "VALUES (%s, %s, 1, 'EUR', 0)",
            [_insert_posting(cursor), alice.pk],
        )

    with pytest.raises(IntegrityError, match="on cash account"):
        _in_transaction(write)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "assignment",
    ["balance = -1", "held = -1", "held = balance + 1"],
)
def test_customer_balance_and_held_constraints(assignment: str) -> None:
    alice = funded_account(amount="100")
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE ledger_cashaccount SET {assignment} WHERE id = %s",  # noqa: S608
            [alice.pk],
        )


@pytest.mark.django_db
def test_house_bank_may_be_negative_but_not_have_an_owner() -> None:
    alice = funded_account(amount="1")
    bank = house_account(kind=AccountKind.HOUSE_BANK, currency="USD")
    assert bank.balance == Decimal("-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        CashAccount.objects.filter(pk=bank.pk).update(owner=alice.owner)
    with pytest.raises(IntegrityError), transaction.atomic():
        CashAccount.objects.create(kind=AccountKind.HOUSE_BANK, currency="USD")
    with pytest.raises(IntegrityError), transaction.atomic():
        CashAccount.objects.create(owner=alice.owner, kind=AccountKind.CUSTOMER, currency="USD")
