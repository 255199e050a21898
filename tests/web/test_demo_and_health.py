"""The demo endpoint exists only in demo mode and answers a bare 204; health names what is down."""

from __future__ import annotations

from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from fastapi.testclient import TestClient

from tests import support
from web.app import create_app


def test_the_demo_callback_is_only_served_in_demo_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMNIDESK_DEMO", raising=False)
    with TestClient(create_app()) as production:
        assert production.post("/demo/callback", content=b'{"text": "hi"}').status_code in (404, 405)
        assert "/demo/callback" not in production.get("/openapi.json").text
    for app in (create_app(demo=True), _with_env(monkeypatch)):
        with TestClient(app) as demo:
            answer = demo.post("/demo/callback", content=b'{"text": "hi"}')
            assert answer.status_code == 204
            assert answer.content == b"" and answer.headers.get("content-length", "0") == "0"


def _with_env(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("OMNIDESK_DEMO", "1")
    return create_app()


@pytest.fixture
def stub_broker() -> Iterator[None]:
    previous = dramatiq.get_broker()
    yield
    dramatiq.set_broker(previous)


def _health(monkeypatch: pytest.MonkeyPatch, database_url: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    monkeypatch.setenv("OMNIDESK_DATABASE_URL", database_url)
    monkeypatch.setenv("OMNIDESK_SECRET_KEY", "test-secret-key")
    support.reset_caches()
    try:
        with TestClient(create_app()) as client:
            answer = client.get("/healthz")
        return answer.status_code, answer.json()
    finally:
        support.reset_caches()


def test_health_names_the_dependency_that_is_down(monkeypatch: pytest.MonkeyPatch, tmp_path, stub_broker) -> None:  # type: ignore[no-untyped-def]
    from dramatiq.brokers.stub import StubBroker

    sqlite = f"sqlite:///{tmp_path}/ok.db"
    dramatiq.set_broker(StubBroker())
    assert _health(monkeypatch, sqlite) == (200, {"status": "ok", "database": "ok", "broker": "ok", "down": [],
                                                  "detail": None})

    status, body = _health(monkeypatch, "postgresql://postgres@127.0.0.1:1/nothing")
    assert status == 503 and body["down"] == ["database"] and body["detail"] == "database is down"
    assert body["database"].startswith("error: ") and body["broker"] == "ok"

    dramatiq.set_broker(RedisBroker(url="redis://127.0.0.1:1/0"))
    status, body = _health(monkeypatch, sqlite)
    assert status == 503 and body["down"] == ["broker"] and body["detail"] == "broker is down"
    status, body = _health(monkeypatch, "postgresql://postgres@127.0.0.1:1/nothing")
    assert status == 503 and body["down"] == ["database", "broker"]
    assert body["detail"] == "database and broker are down"
