import pytest
from django.test import Client


@pytest.mark.django_db
def test_healthz_answers_over_plain_http_without_login(client: Client) -> None:
    # Production profile (SECURE_SSL_REDIRECT on): the probe path is exempt from the redirect,
    # and from login/MFA.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response["Cache-Control"].startswith("max-age=0")
