"""The ingest benchmark's baseline: the least a webhook endpoint can do on the same stack — the
same uvicorn, the same FastAPI route shape, the same HMAC check, and one INSERT transaction
through the same SQLAlchemy/psycopg engine omnidesk uses. ``uvicorn bench.baseline_app:create_app``."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, MetaData, String, Table, func
from sqlalchemy.dialects.postgresql import insert
from starlette.concurrency import run_in_threadpool

metadata = MetaData()
inbox = Table(
    "bench_baseline", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("external_id", String(400), unique=True, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", DateTime, server_default=func.now()),
)


def create_app() -> FastAPI:
    from store.db import get_engine

    engine = get_engine(os.environ["OMNIDESK_DATABASE_URL"])
    metadata.create_all(engine)
    secret = os.environ["BASELINE_SECRET"].encode()
    app = FastAPI()

    def store(body: bytes) -> None:
        message_id = json.loads(body)["message_id"]
        with engine.begin() as conn:
            conn.execute(insert(inbox).values(external_id=message_id, body=body).on_conflict_do_nothing())

    @app.post("/webhooks/{channel_id}", status_code=202)
    async def webhook(channel_id: int, request: Request) -> JSONResponse:
        body = await request.body()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("x-omnidesk-signature", ""), expected):
            return JSONResponse({"detail": "bad signature"}, status_code=401)
        await run_in_threadpool(store, body)
        return JSONResponse({"stored": 1}, status_code=202)

    return app
