import pytest
from pytest_django.fixtures import Settings

from apps.accounts.models import User
from apps.kyc.models import KycApplication
from tests.integration.kyc.factories import KycApplicationFactory
from tests.integration.ledger.checks import ledger_consistent_after_test, ledger_unchecked

__all__ = ["ledger_consistent_after_test", "ledger_unchecked"]


@pytest.fixture(autouse=True)
def _celery_eager(settings: Settings) -> None:
    """Tasks enqueued after commit run inline (run the callbacks with
    `django_capture_on_commit_callbacks(execute=True)`)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def kyc_approved(user: User) -> KycApplication:
    application: KycApplication = KycApplicationFactory.create(user=user, approved=True)
    return application
