"""`trading_eligibility`: the single gate later features call before trading or withdrawals."""

import pytest
from django.contrib.auth.models import AnonymousUser

from apps.kyc.models import KycStatus
from apps.kyc.selectors import kyc_is_approved, trading_eligibility
from tests.factories import UserFactory
from tests.integration.kyc.factories import KycApplicationFactory

pytestmark = pytest.mark.django_db


def test_approved_verified_active_user_may_trade() -> None:
    application = KycApplicationFactory.create(approved=True)
    result = trading_eligibility(user=application.user)
    assert (result.allowed, result.code) == (True, "ok")
    assert kyc_is_approved(user=application.user) is True


def test_user_without_application_is_not_approved() -> None:
    user = UserFactory.create()
    result = trading_eligibility(user=user)
    assert (result.allowed, result.code) == (False, "kyc_not_approved")
    assert "submit your identity verification" in result.message
    assert kyc_is_approved(user=user) is False


@pytest.mark.parametrize(
    ("trait", "status", "phrase"),
    [
        ({}, KycStatus.DRAFT, "Complete and submit"),
        ({"submitted": True}, KycStatus.SUBMITTED, "being reviewed"),
        ({"status": KycStatus.REJECTED}, KycStatus.REJECTED, "not approved"),
        (
            {"status": KycStatus.MORE_INFO_REQUESTED},
            KycStatus.MORE_INFO_REQUESTED,
            "more information",
        ),
    ],
)
def test_each_unapproved_state_is_refused(
    trait: dict[str, object], status: str, phrase: str
) -> None:
    extra: dict[str, object] = {}
    if status in (KycStatus.REJECTED, KycStatus.MORE_INFO_REQUESTED):
        extra = {
            "decision_reason": "Reason.",
            "reviewed_by": UserFactory.create(is_staff=True),
            "reviewed_at": "2026-01-01T00:00:00Z",
        }
    application = KycApplicationFactory.create(**trait, **extra)
    assert application.status == status
    result = trading_eligibility(user=application.user)
    assert (result.allowed, result.code) == (False, "kyc_not_approved")
    assert phrase in result.message
    assert kyc_is_approved(user=application.user) is False


def test_unverified_email_comes_before_kyc() -> None:
    application = KycApplicationFactory.create(
        approved=True, user=UserFactory.create(email_verified_at=None)
    )
    result = trading_eligibility(user=application.user)
    assert (result.allowed, result.code) == (False, "email_not_verified")


def test_inactive_account_is_refused_even_if_approved() -> None:
    application = KycApplicationFactory.create(
        approved=True, user=UserFactory.create(is_active=False)
    )
    result = trading_eligibility(user=application.user)
    assert (result.allowed, result.code) == (False, "account_inactive")


def test_anonymous_user_is_refused() -> None:
    result = trading_eligibility(user=AnonymousUser())
    assert result.allowed is False
    assert result.code == "account_inactive"


def test_eligibility_is_immutable() -> None:
    result = trading_eligibility(user=UserFactory.create())
    with pytest.raises(AttributeError):
        result.allowed = True  # type: ignore[misc]
