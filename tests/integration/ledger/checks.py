"""Ledger invariants checked after every ledger and funding test (fixtures imported by both
conftests)."""

from collections.abc import Iterator

import pytest
from django.db import connection

from apps.ledger.selectors import (
    ledger_account_mismatches,
    ledger_totals,
    ledger_unbalanced_postings,
)


def assert_ledger_consistent() -> None:
    """Fire the deferred balance triggers now (tests never commit) and reconcile everything."""
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert ledger_unbalanced_postings() == []
    assert ledger_account_mismatches() == []
    assert all(total == 0 for total in ledger_totals().values()), ledger_totals()


@pytest.fixture
def ledger_unchecked() -> None:
    """Request this in a test that leaves the ledger broken on purpose (raw SQL tests)."""


@pytest.fixture(autouse=True)
def ledger_consistent_after_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test ends with a balanced, reconciled ledger."""
    request.getfixturevalue("db")
    yield
    if "ledger_unchecked" not in request.fixturenames:
        assert_ledger_consistent()
