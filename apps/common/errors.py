"""One error vocabulary for the whole platform.

Services raise `DomainError` subclasses carrying a machine-readable `code`; the API exception
handler and the HTML views render them. Every API error body has the same shape:

    {"code": "<machine_code>", "message": "<human sentence>", "fields": {"<field>": ["..."]}}

`fields` is present only for validation errors.
"""

from typing import Any


class DomainError(Exception):
    """A refused business operation. Subclasses set `code` and `status_code`."""

    code = "invalid_request"
    status_code = 400

    def __init__(
        self, message: str, *, code: str | None = None, fields: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields or {}


class InvalidInput(DomainError):
    code = "invalid_input"
    status_code = 400


class InvalidTransition(DomainError):
    code = "invalid_transition"
    status_code = 409


class Forbidden(DomainError):
    code = "forbidden"
    status_code = 403


class NotFound(DomainError):
    code = "not_found"
    status_code = 404


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return body
