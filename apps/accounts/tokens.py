"""Pure helpers for API token secrets (no database access)."""

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "brk_"  # noqa: S105 - a public marker, not a secret


def token_generate() -> tuple[str, str]:
    """Return (raw token, lookup prefix). The raw token is shown once and never stored."""
    lookup = secrets.token_hex(4)
    raw = f"{TOKEN_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    return raw, lookup


def token_hash(raw: str) -> str:
    # A fast hash is right here: the secret has 256 bits of entropy, so brute force is moot and
    # every authenticated request pays for this hash.
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def token_lookup_prefix(raw: str) -> str | None:
    if not raw.startswith(TOKEN_PREFIX):
        return None
    parts = raw[len(TOKEN_PREFIX) :].split("_", 1)
    return parts[0] if len(parts) == 2 and len(parts[0]) == 8 else None


def hashes_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
