import redis
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.accounts.decorators import mfa_exempt
from apps.matching.protocol import Names
from apps.matching.selectors import matcher_health


@mfa_exempt
@never_cache
@require_GET
def matcher_healthz(request: HttpRequest) -> JsonResponse:
    """Matching workers' health for probes and dashboards (no order data, no login): 200 when
    every shard's worker is running and reported within MATCHER_HEALTH_STALE_SECONDS."""
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1)
    try:
        body = matcher_health(
            redis=client,
            shards=settings.MATCHER_SHARDS,
            names=Names(settings.MATCHER_PREFIX, settings.MATCHER_MD_PREFIX),
            stale_after=settings.MATCHER_HEALTH_STALE_SECONDS,
        )
    except redis.RedisError as exc:
        body = {"status": "degraded", "error": f"redis: {exc.__class__.__name__}", "shards": []}
    finally:
        client.close()
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)
