"""The OpenAPI document tells the truth: how to authenticate, what every answer and every error
looks like, which channel kinds exist."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from connectors import REGISTRY
from web.app import create_app


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    with TestClient(create_app()) as client:
        answer = client.get("/openapi.json")
    assert answer.status_code == 200
    return answer.json()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def _schema(document: dict[str, Any], ref: str) -> dict[str, Any]:
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_the_api_declares_the_bearer_scheme(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    [(name, scheme)] = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    for method, path, op in _operations(document):
        if path.startswith(("/api/v1/session", "/api/v1/invites/")):  # signing in: no token, or the cookie
            assert "security" not in op, (method, path)
        elif path.startswith("/api/v1/"):
            assert op.get("security") == [{name: []}], (method, path)
            assert "401" in op["responses"], (method, path)


def test_errors_are_documented_as_a_string_detail(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    seen = 0
    for method, path, op in _operations(document):
        for status, answer in op["responses"].items():
            if status.startswith(("4", "5")) and path != "/healthz":
                schema = _schema(document, answer["content"]["application/json"]["schema"]["$ref"])
                assert schema["required"] == ["detail"] and schema["properties"]["detail"]["type"] == "string", \
                    (method, path, status)
                seen += 1
    assert seen > 30


def test_every_json_answer_has_a_model(document: dict[str, Any]) -> None:
    for method, path, op in _operations(document):
        for status, answer in op["responses"].items():
            if not status.startswith("2") or "application/json" not in answer.get("content", {}):
                continue
            if path.startswith("/webhooks/"):
                continue  # the provider's answer; documented in words
            schema = answer["content"]["application/json"]["schema"]
            assert "$ref" in schema, (method, path, status, schema)
            assert _schema(document, schema["$ref"]).get("properties"), (method, path)
    assert document["paths"]["/api/v1/attachments/{attachment_id}"]["get"]["responses"]["200"]["content"] == {
        "application/octet-stream": {}}


def test_presence_and_ids_are_described(document: dict[str, Any]) -> None:
    body = document["paths"]["/api/v1/agents/{agent_id}/presence"]["put"]["requestBody"]
    presence = _schema(document, body["content"]["application/json"]["schema"]["$ref"])
    assert presence["required"] == ["status"] and presence["additionalProperties"] is False
    assert presence["properties"]["status"]["enum"] == ["online", "away", "offline"]
    [param] = document["paths"]["/api/v1/conversations/{conversation_id}"]["get"]["parameters"]
    assert param["schema"]["maximum"] == 2**31 - 1  # the id columns are 32-bit on PostgreSQL


def test_the_description_names_only_channels_that_exist(document: dict[str, Any]) -> None:
    description = document["info"]["description"]
    for kind in REGISTRY:
        assert kind in description
    for missing in ("WhatsApp", "Telegram", "SMS", "X and"):
        if missing.lower().split()[0] not in REGISTRY:
            assert missing not in description
