from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import User
from tests.integration.api.support import disable_throttles, token_client
from tests.integration.orders.conftest import default_tier, instrument, trader

__all__ = ["default_tier", "instrument", "trader"]


@pytest.fixture
def unthrottled(settings: Any) -> None:
    disable_throttles(settings)


@pytest.fixture
def trader_api(trader: User) -> APIClient:
    """The trader's app: token-authenticated like the mobile apps."""
    return token_client(trader)
