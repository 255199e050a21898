"""``GET /healthz``: whether the database and the broker answer, and which one does not."""

from __future__ import annotations

from typing import Literal

import dramatiq
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

import brokers
from store.db import get_engine

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "error"]
    database: str = Field(description="`ok`, or `error: <kind of error>`")
    broker: str = Field(description="`ok`, or `error: <kind of error>`")
    down: list[str] = Field(description="the dependencies that do not answer")
    detail: str | None = Field(default=None, description="with 503: which dependency is down")


def check_database() -> None:
    with get_engine().connect() as conn:
        conn.execute(text("SELECT 1"))


def check_broker() -> None:
    """Ping the broker's server (Redis, RabbitMQ); the in-process broker always answers."""
    brokers.ping(dramatiq.get_broker())


@router.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "something is down"}})
def healthz() -> JSONResponse:
    """200 when the database and the broker answer, 503 otherwise, naming what is down."""
    checks: dict[str, str] = {}
    for name, check in (("database", check_database), ("broker", check_broker)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "down"; the kind is reported
            checks[name] = f"error: {type(exc).__name__}"
    down = [name for name, result in checks.items() if result != "ok"]
    body = Health(status="error" if down else "ok", down=down, **checks,
                  detail=f"{' and '.join(down)} {'is' if len(down) == 1 else 'are'} down" if down else None)
    return JSONResponse(body.model_dump(), status_code=503 if down else 200)
