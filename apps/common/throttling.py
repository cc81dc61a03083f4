"""Per-user API rate limits, counted in Redis (the default cache).

DRF's stock throttles keep a list of timestamps per client and rewrite it on every request
(read-modify-write, racy under parallel requests, O(rate) per call). These use one fixed-window
counter per (scope, client, window) instead: `cache.add` + `cache.incr` are atomic in Redis, so
parallel requests cannot slip through, and each check costs two round trips.

Rates come from `REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`, read on every request (DRF's own
classes freeze them at import time, which makes them impossible to change in tests). A rate is
`"<count>/<period>"` with period `s`, `sec`, `m`, `min`, `h`, `hour`, `d`, `day`, optionally with
a multiplier (`"100/10s"`); `None` or `""` disables the scope.

A refused request raises DRF's `Throttled`: the exception handler renders `429` with
`{"code": "throttled", "message": ...}` and a `Retry-After` header (whole seconds until the
window ends). If Redis is unreachable the throttle lets the request through (logged): rate limits
protect capacity, they must not take trading down with the cache.
"""

import logging
import math
import re
import time
from typing import Any

from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from apps.common.http import client_ip

logger = logging.getLogger(__name__)

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$")
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """`"20/s"` -> (20, 1); `"100/10s"` -> (100, 10); `None`/`""` -> None (no limit)."""
    if rate is None or not str(rate).strip():
        return None
    match = _RATE_RE.match(str(rate).lower())
    if match is None:
        raise ValueError(f"Invalid throttle rate {rate!r}; use e.g. '20/s' or '1000/min'.")
    count, multiplier, unit = int(match[1]), int(match[2] or 1), match[3][0]
    return count, multiplier * _PERIOD_SECONDS[unit]


def _address(request: Request) -> str:
    # REMOTE_ADDR only (as everywhere in the platform): X-Forwarded-For is forgeable, and DRF's
    # get_ident() would trust it.
    return client_ip(request._request) or "unknown"


class FixedWindowThrottle(BaseThrottle):
    """Allows `count` requests per client per aligned window of `duration` seconds."""

    scope: str = ""
    # HTTP methods this throttle counts; empty = all.
    methods: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self._wait: float | None = None

    def get_rate(self) -> tuple[int, int] | None:
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES or {}
        return parse_rate(rates.get(self.scope))

    def get_ident_key(self, request: Request) -> str | None:
        """Who is counted: the user for signed-in requests, else the client address."""
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"u{user.pk}"
        return f"ip{_address(request)}"

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.methods and request.method not in self.methods:
            return True
        rate = self.get_rate()
        if rate is None:
            return True
        ident = self.get_ident_key(request)
        if ident is None:
            return True
        count, duration = rate
        now = time.time()
        window = int(now // duration)
        key = f"throttle:{self.scope}:{duration}:{ident}:{window}"
        try:
            cache.add(key, 0, timeout=duration + 1)
            try:
                used = cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=duration + 1)
                used = 1
        except (RedisError, OSError):  # fail open, see the module docstring
            logger.warning("throttle %s: cache unavailable, request allowed", self.scope)
            return True
        if used <= count:
            return True
        self._wait = max((window + 1) * duration - now, 1.0)
        return False

    def wait(self) -> float | None:
        return None if self._wait is None else float(math.ceil(self._wait))


class UserRateThrottle(FixedWindowThrottle):
    """Every signed-in API request, per user (scope `user`)."""

    scope = "user"

    def get_ident_key(self, request: Request) -> str | None:
        user = getattr(request, "user", None)
        return f"u{user.pk}" if user is not None and user.is_authenticated else None


class AnonRateThrottle(FixedWindowThrottle):
    """Anonymous requests that reach a view (login, schema), per client address (`anon`)."""

    scope = "anon"

    def get_ident_key(self, request: Request) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return None
        return f"ip{_address(request)}"


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class OrderBurstThrottle(FixedWindowThrottle):
    """Order placement, cancel and replace per user per second (`orders_burst`)."""

    scope = "orders_burst"
    methods = _WRITES


class OrderSustainedThrottle(FixedWindowThrottle):
    """Order placement, cancel and replace per user per minute (`orders_sustained`)."""

    scope = "orders_sustained"
    methods = _WRITES
