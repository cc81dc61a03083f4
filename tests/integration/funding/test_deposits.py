"""Deposits: API → pending → (after commit) gateway → ledger posting or failure."""

from collections.abc import Callable
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.funding.models import Deposit, DepositStatus
from apps.funding.tasks import deposit_process_task
from apps.kyc.models import KycApplication
from apps.ledger.models import AccountKind, CashAccount, Posting, PostingLine
from apps.ledger.services import house_account
from tests.integration.funding.factories import UnreachableGateway

pytestmark = pytest.mark.django_db

DEPOSITS = reverse("funding_api:deposits")
Capture = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


def _deposit(client: APIClient, capture: Capture, **body: object) -> Any:
    with capture(execute=True):
        return client.post(DEPOSITS, body, format="json")


def _current(client: APIClient, response: Any) -> dict[str, Any]:
    """The deposit as the API shows it now (the task ran when the request's commit happened)."""
    body: dict[str, Any] = client.get(
        reverse("funding_api:deposit", args=[response.json()["id"]])
    ).json()
    return body


def _balance(user: User, currency: str = "USD") -> Decimal:
    account = CashAccount.objects.filter(owner=user, currency=currency).first()
    return account.balance if account else Decimal(0)


def test_deposit_succeeds_and_posts_bank_to_customer(
    verified_api_client: APIClient,
    user: User,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    response = _deposit(
        verified_api_client, django_capture_on_commit_callbacks, amount="250.40", currency="usd"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending"
    body = _current(verified_api_client, response)
    assert body["status"] == "completed"
    assert body["amount"] == "250.40000000"
    assert body["currency"] == "USD"
    assert body["gateway"] == "simulated"
    assert body["gateway_reference"] == f"sim_ch_{body['id']}"

    deposit = Deposit.objects.get()
    assert deposit.posting is not None
    lines = {line.account.kind: line.amount for line in deposit.posting.lines.all()}
    assert lines == {
        AccountKind.HOUSE_BANK: Decimal("-250.40"),
        AccountKind.CUSTOMER: Decimal("250.40"),
    }
    assert _balance(user) == Decimal("250.40")
    assert house_account(kind=AccountKind.HOUSE_BANK, currency="USD").balance == Decimal("-250.40")
    actions = list(
        AuditEvent.objects.order_by("seq")
        .filter(
            action__in=["funding.deposit_requested", "ledger.posted", "funding.deposit_completed"]
        )
        .values_list("action", flat=True)
    )
    assert actions == ["funding.deposit_requested", "ledger.posted", "funding.deposit_completed"]

    detail = verified_api_client.get(reverse("funding_api:deposit", args=[deposit.pk]))
    assert detail.json()["status"] == "completed"
    listing = verified_api_client.get(DEPOSITS).json()
    assert [row["id"] for row in listing["results"]] == [deposit.pk]


def test_gateway_failure_marks_the_deposit_failed_and_posts_nothing(
    verified_api_client: APIClient,
    user: User,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    response = _deposit(
        verified_api_client, django_capture_on_commit_callbacks, amount="100.13", currency="USD"
    )
    assert response.status_code == 201
    body = _current(verified_api_client, response)
    assert body["status"] == "failed"
    assert body["failure_reason"] == "Card declined."
    deposit = Deposit.objects.get()
    assert deposit.posting is None
    assert not Posting.objects.exists()
    assert _balance(user) == 0
    assert AuditEvent.objects.filter(action="funding.deposit_failed").count() == 1


def test_pending_gateway_answer_keeps_the_deposit_pending(
    verified_api_client: APIClient,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    response = _deposit(
        verified_api_client, django_capture_on_commit_callbacks, amount="10.77", currency="USD"
    )
    body = _current(verified_api_client, response)
    assert body["status"] == "pending"
    assert body["gateway_reference"].startswith("sim_ch_")
    assert not Posting.objects.exists()


def test_gateway_is_only_called_after_commit(
    verified_api_client: APIClient,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = verified_api_client.post(
            DEPOSITS, {"amount": "5", "currency": "USD"}, format="json"
        )
    assert response.json()["status"] == "pending"
    assert len(callbacks) == 1
    assert not Posting.objects.exists()
    callbacks[0]()  # the commit happens: the task runs
    assert Deposit.objects.get().status == DepositStatus.COMPLETED


def test_the_task_running_twice_posts_once(
    verified_api_client: APIClient,
    user: User,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    _deposit(verified_api_client, django_capture_on_commit_callbacks, amount="40", currency="USD")
    deposit = Deposit.objects.get()
    assert deposit_process_task.apply(args=(deposit.pk,)).get() == "completed"
    deposit_process_task.apply(args=(deposit.pk,))
    assert Posting.objects.count() == 1
    assert PostingLine.objects.count() == 2
    assert _balance(user) == Decimal("40")


def test_idempotency_key_returns_the_same_deposit(
    verified_api_client: APIClient,
    user: User,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    body = {"amount": "75.00", "currency": "USD", "idempotency_key": "phone-req-1"}
    first = _deposit(verified_api_client, django_capture_on_commit_callbacks, **body)
    again = _deposit(verified_api_client, django_capture_on_commit_callbacks, **body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert _balance(user) == Decimal("75")

    reused = _deposit(
        verified_api_client,
        django_capture_on_commit_callbacks,
        **{**body, "amount": "76.00"},
    )
    assert reused.status_code == 409
    assert reused.json()["code"] == "idempotency_key_reused"
    assert Deposit.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"amount": "10.001", "currency": "USD"}, "invalid_precision"),
        ({"amount": "0", "currency": "USD"}, "invalid_input"),
        ({"amount": "-5", "currency": "USD"}, "invalid_input"),
        ({"amount": 10.5, "currency": "USD"}, "invalid_input"),
        ({"amount": "abc", "currency": "USD"}, "invalid_input"),
        ({"amount": "10", "currency": "XYZ"}, "unsupported_currency"),
    ],
)
def test_invalid_amounts_are_refused(
    verified_api_client: APIClient,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
    body: dict[str, object],
    code: str,
) -> None:
    response = _deposit(verified_api_client, django_capture_on_commit_callbacks, **body)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert set(response.json()) <= {"code", "message", "fields"}
    assert not Deposit.objects.exists()


def test_btc_deposits_take_eight_decimals(
    verified_api_client: APIClient,
    user: User,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    response = _deposit(
        verified_api_client, django_capture_on_commit_callbacks, amount="0.00012345", currency="BTC"
    )
    assert response.status_code == 201
    assert _balance(user, "BTC") == Decimal("0.00012345")


def test_deposits_need_an_approved_kyc(
    verified_api_client: APIClient, django_capture_on_commit_callbacks: Capture
) -> None:
    response = _deposit(
        verified_api_client, django_capture_on_commit_callbacks, amount="10", currency="USD"
    )
    assert response.status_code == 403
    assert response.json()["code"] == "kyc_not_approved"
    assert not Deposit.objects.exists()
    assert not CashAccount.objects.exists()


def test_the_gateway_is_chosen_by_setting_at_call_time(
    settings: Any,
    verified_api_client: APIClient,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    settings.PAYMENT_GATEWAY = "tests.integration.funding.factories.DecliningGateway"
    response = _deposit(
        verified_api_client, django_capture_on_commit_callbacks, amount="10", currency="USD"
    )
    body = _current(verified_api_client, response)
    assert (body["gateway"], body["status"]) == ("declining", "failed")
    assert body["failure_reason"] == "Declined by test gateway."


def test_an_unreachable_gateway_is_retried_and_the_deposit_stays_pending(
    settings: Any,
    verified_api_client: APIClient,
    kyc_approved: KycApplication,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    settings.PAYMENT_GATEWAY = "tests.integration.funding.factories.UnreachableGateway"
    UnreachableGateway.calls = 0
    response = _deposit(
        verified_api_client, django_capture_on_commit_callbacks, amount="10", currency="USD"
    )
    assert _current(verified_api_client, response)["status"] == "pending"
    assert UnreachableGateway.calls == 1 + (deposit_process_task.max_retries or 0)
    assert not Posting.objects.exists()
