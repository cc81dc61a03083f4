"""Deny-by-default: with a signed-in but not OTP-verified session, every URL except the explicit
sign-in/enrolment ones refuses. New endpoints are covered automatically."""

from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.accounts.models import User

pytestmark = pytest.mark.django_db

# Reachable before the second factor (or public). Everything else must refuse.
ALLOWED_BEFORE_OTP = {
    "accounts:signup",
    "accounts:login",
    "accounts:logout",
    "accounts:verify-email",
    "accounts:verify-email-resend",
    "accounts:password-reset",
    "accounts:password-reset-done",
    "accounts:password-reset-confirm",
    "accounts:password-reset-complete",
    "accounts:mfa-setup",
    "accounts:mfa-verify",
    "accounts_api:login",
    "api-schema",
    "api-docs",
    "healthz",
    "matcher-healthz",  # orchestrator probe, like /healthz: no user data
}


def _patterns(resolver: URLResolver, prefix: str = "", ns: str = "") -> Iterator[tuple[str, str]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner_ns = f"{ns}{entry.namespace}:" if entry.namespace else ns
            yield from _patterns(entry, prefix + str(entry.pattern), inner_ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{ns}{entry.name}" if entry.name else ""


def _concrete(route: str) -> str:
    import re

    route = re.sub(r"<int:[^>]+>", "1", route)
    route = re.sub(r"<[^>]+>", "x", route)
    route = route.replace("^", "").replace("$", "").replace("\\", "")
    route = re.sub(r"\(\?P<[^>]+>[^)]*\)", "1", route)
    return "/" + route


def _guarded_routes() -> list[tuple[str, str]]:
    routes = []
    for route, name in _patterns(get_resolver()):
        if name in ALLOWED_BEFORE_OTP or route.startswith("static"):
            continue
        routes.append((_concrete(route), name))
    return routes


def test_the_gate_covers_the_money_trading_token_and_settings_endpoints() -> None:
    names = {name for _, name in _guarded_routes()}
    for required in [
        "accounts:security",
        "accounts:token-create",
        "accounts_api:tokens",
        "accounts_api:me",
        "kyc:application",
    ]:
        assert required in names


@pytest.mark.parametrize(("path", "name"), _guarded_routes())
def test_every_guarded_url_refuses_without_otp(
    unverified_client: Client, user: User, path: str, name: str
) -> None:
    for method in ("get", "post"):
        response = getattr(unverified_client, method)(path)
        if path.startswith("/api/"):
            assert response.status_code == 403, (method, path, response.status_code)
            assert response.json()["code"] == "otp_required"
        else:
            assert response.status_code == 302, (method, path, response.status_code)
            assert "/mfa/" in response["Location"] or "/admin/login/" in response["Location"], (
                method,
                path,
                response["Location"],
            )
