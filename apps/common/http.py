from django.http import HttpRequest


def client_ip(request: HttpRequest | None) -> str | None:
    """The peer address as seen by Django.

    Behind a proxy, configure it to overwrite REMOTE_ADDR (daphne --proxy-headers does); we do not
    trust X-Forwarded-For here because any client can forge it.
    """
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def user_agent(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(request.META.get("HTTP_USER_AGENT", ""))[:300]
