from tests.integration.ledger.checks import ledger_consistent_after_test, ledger_unchecked

__all__ = ["ledger_consistent_after_test", "ledger_unchecked"]
