"""The OpenAPI document: served, valid, decimals as strings, one error body."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

TRADING_PATHS = (
    "/api/v1/instruments/",
    "/api/v1/quotes/",
    "/api/v1/orders/",
    "/api/v1/positions/",
    "/api/v1/activities/fills/",
)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}/{i}")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    generated: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return generated


def test_schema_is_valid_and_served_with_interactive_docs(
    schema: dict[str, Any], client: Client
) -> None:
    validate_schema(schema)
    served = client.get("/api/schema/?format=json")
    assert served.status_code == 200
    assert "/api/v1/orders/{order_id}/" in served.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_no_number_can_carry_money_or_quantities(schema: dict[str, Any]) -> None:
    numbers = [where for where, node in _walk(schema) if node.get("type") == "number"]
    assert numbers == []
    decimals = [node for _, node in _walk(schema) if node.get("format") == "decimal"]
    assert decimals
    assert all(node["type"] == "string" for node in decimals)


def test_trading_operations_document_the_error_body(schema: dict[str, Any]) -> None:
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        if path.startswith(TRADING_PATHS)
        for method, op in item.items()
        if method in ("get", "post", "patch", "delete")
    ]
    assert len(operations) >= 10
    for path, method, op in operations:
        for status in ("401", "403", "429"):
            assert status in op["responses"], (method, path, status)
            content = op["responses"][status]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (method, path)
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "message"]
    assert set(error["properties"]) == {"code", "message", "fields"}
