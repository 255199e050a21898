"""``POST /api/v1/conversations/{id}/messages``: the composer's reply or private note, as JSON
(``{"text", "private"}``) or as multipart/form-data with files (a form without files may also be
urlencoded) (fields ``text``, ``private``
``"true"``/``"false"``, and ``files`` repeated).

Files: at most MAX_FILES, MAX_FILE bytes each, MAX_TOTAL in all (413 past a size, 422 past the
count). A reply with files on a channel that cannot send them (``Capabilities.supports_attachments``)
is refused at once with 422; a private note carries files on any channel. The files are stored as
the message's attachments in the transaction that stores it (``store.outbound.create_reply``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from connectors.base import Attachment
from store import outbound
from store.db import get_engine
from store.reachability import ContactUnreachable
from web.api_conversations import visible
from web.deps import CurrentAgent
from web.schemas import Id, Input, ReplyOut, errors
from workers import ring_delivery

router = APIRouter(tags=["conversations"], responses=errors(401, 422))

MiB = 1024 * 1024
MAX_FILE = 10 * MiB
MAX_TOTAL = 25 * MiB
MAX_FILES = 10
MAX_TEXT = 100_000


class TemplateIn(Input):
    name: str = Field(min_length=1, max_length=100)
    variables: dict[str, str] = Field(default_factory=dict, max_length=20)


class ReplyIn(Input):
    text: str = Field(default="", max_length=MAX_TEXT)
    template: TemplateIn | None = Field(default=None, description="one of the channel's approved templates "
                                        "instead of text (WhatsApp outside its 24-hour window)")
    private: bool = False

    @model_validator(mode="after")
    def _text_or_template(self) -> ReplyIn:
        if (not self.text) == (self.template is None):
            raise ValueError("a reply needs its text, or a template instead of text (not both)")
        return self


class FormReply(Input):
    """The multipart form's fields: the text may be empty when files come with it."""

    text: str = Field(default="", max_length=MAX_TEXT)
    private: bool = False


FORM_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "maxLength": MAX_TEXT},
        "private": {"type": "string", "enum": ["true", "false"]},
        "files": {"type": "array", "maxItems": MAX_FILES, "items": {"type": "string", "format": "binary"}},
    },
}
BODY = {"required": True, "content": {
    "application/json": {"schema": ReplyIn.model_json_schema()},
    "multipart/form-data": {"schema": FORM_SCHEMA},
}}


def _invalid(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(exc.errors(include_url=False))


async def _from_json(request: Request) -> tuple[ReplyIn, list[Attachment]]:
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HTTPException(422, "the body is not JSON: send {\"text\", \"private\"}, or a multipart form") from None
    try:
        return ReplyIn.model_validate(data), []
    except ValidationError as exc:
        raise _invalid(exc) from None


async def _from_form(request: Request) -> tuple[FormReply, list[Attachment]]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_TOTAL + MiB:
        raise HTTPException(413, f"the files come to more than {MAX_TOTAL // MiB} MiB, the most one message takes")
    form = await request.form(max_files=MAX_FILES * 10, max_fields=20)
    try:
        private = form.get("private", "false")
        if private not in ("true", "false"):
            raise HTTPException(422, 'private: "true" or "false"')
        text = form.get("text", "")
        if not isinstance(text, str):
            raise HTTPException(422, "text: a form field, not a file")
        try:
            body = FormReply.model_validate({"text": text, "private": private == "true"})
        except ValidationError as exc:
            raise _invalid(exc) from None
        uploads = form.getlist("files")
        if len(uploads) > MAX_FILES:
            raise HTTPException(422, f"files: at most {MAX_FILES} files a message ({len(uploads)} sent)")
        files, total = [], 0
        for upload in uploads:
            if not isinstance(upload, UploadFile):
                raise HTTPException(422, "files: each must be a file part (with a filename)")
            data = await upload.read(MAX_FILE + 1)
            name = (upload.filename or "file")[:500]
            if len(data) > MAX_FILE:
                raise HTTPException(413, f"{name} is larger than {MAX_FILE // MiB} MiB, the most a file may be")
            total += len(data)
            if total > MAX_TOTAL:
                raise HTTPException(413, f"the files come to more than {MAX_TOTAL // MiB} MiB, the most one "
                                         "message takes")
            content_type = (upload.content_type or "application/octet-stream")[:200]
            files.append(Attachment(filename=name.replace("\x00", ""), content_type=content_type, data=data))
        if not body.text.strip() and not files:
            raise HTTPException(422, "text: a reply needs text or files")
        return body, files
    finally:
        await form.close()


@router.post("/conversations/{conversation_id}/messages", status_code=202, responses=errors(400, 404, 413, 422),
             openapi_extra={"requestBody": BODY})
async def reply(conversation_id: Id, request: Request, agent: CurrentAgent) -> ReplyOut:
    """Store a reply (``pending``; a worker delivers it on the conversation's channel) or a
    private note (never sent), with files when sent as multipart/form-data (see the module)."""
    await run_in_threadpool(visible, conversation_id, agent)
    kind = request.headers.get("content-type", "").lower()
    form = kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded"))
    body, files = await (_from_form(request) if form else _from_json(request))
    template = body.template.model_dump() if isinstance(body, ReplyIn) and body.template else None
    message_id = await run_in_threadpool(_store, conversation_id, agent, body.text, body.private, files, template)
    return ReplyOut(id=message_id, status="sent" if body.private else "pending", private=body.private)


def _store(conversation_id: int, agent: Any, text: str, private: bool, files: list[Attachment],
           template: dict[str, Any] | None) -> int:
    try:
        message_id = outbound.create_reply(get_engine(), conversation_id, agent_id=agent.id, text=text,
                                           private=private, files=files, template=template)
    except (outbound.ReplyRefused, outbound.UnknownTemplate, ContactUnreachable) as exc:  # window, length, files
        raise HTTPException(422, str(exc)) from None
    if not private:
        ring_delivery(message_id)
    return message_id
