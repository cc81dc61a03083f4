"""Shared pytest fixtures. Tests use the real PostgreSQL and Redis in DATABASE_URL / REDIS_URL."""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from apps.accounts.models import User
from tests.factories import DEFAULT_PASSWORD, StaffFactory, TOTPDeviceFactory, UserFactory


@pytest.fixture
def password() -> str:
    return DEFAULT_PASSWORD


@pytest.fixture
def user(db: None) -> User:
    created: User = UserFactory.create()
    return created


@pytest.fixture
def staff_user(db: None) -> User:
    created: User = StaffFactory.create()
    return created


@pytest.fixture
def totp_device(user: User) -> TOTPDevice:
    return TOTPDeviceFactory(user=user)


def _otp_login(client: Client, user: User, device: TOTPDevice | None) -> Client:
    client.force_login(user)
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


@pytest.fixture
def login_client() -> Callable[..., Client]:
    """Factory: a browser client signed in as `user`, OTP-verified when `device` is given."""

    def make(user: User, device: TOTPDevice | None = None, *, api: bool = False) -> Client:
        client: Client = APIClient() if api else Client()
        return _otp_login(client, user, device)

    return make


@pytest.fixture
def verified_client(user: User, totp_device: TOTPDevice) -> Client:
    return _otp_login(Client(), user, totp_device)


@pytest.fixture
def unverified_client(user: User, totp_device: TOTPDevice) -> Client:
    return _otp_login(Client(), user, None)


@pytest.fixture
def verified_api_client(user: User, totp_device: TOTPDevice) -> APIClient:
    client = APIClient()
    _otp_login(client, user, totp_device)
    return client


@pytest.fixture
def staff_client(staff_user: User) -> Client:
    device = TOTPDeviceFactory(user=staff_user)
    return _otp_login(Client(), staff_user, device)


@pytest.fixture(autouse=True)
def _plain_http_in_tests(settings: Any) -> None:
    """The test client speaks plain HTTP; the HTTPS redirect is covered by the deploy check."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _isolated_media(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2 at production strength costs ~0.3 s per password; tests create hundreds of users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
