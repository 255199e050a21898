from __future__ import annotations

from typing import Any

import dramatiq
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

import brokers
from store.db import get_engine

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> Any:
    """200 when the database and the broker answer, 503 otherwise."""
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"error: {type(exc).__name__}"
    broker = dramatiq.get_broker()
    try:
        brokers.ping(broker)  # Redis, RabbitMQ; the in-process broker always answers
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "error", **checks}, status_code=200 if ok else 503)
