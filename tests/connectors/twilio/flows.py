"""The end-to-end stories of the Twilio channels, run on any running omnidesk (the embedded
default in this process, or the separate-process deployment): a ``desk`` with ``ok(method, path,
...)`` for the API, ``http`` for raw requests and its public ``url``."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.fakes.twilio import FakeTwilio, inbound
from tests.support import wait_for

CUSTOMER = "+34600111222"
TEMPLATE = {"name": "order_update", "content_sid": "HX" + "cd" * 16, "language": "es", "variables": ["1", "2"]}


def sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


class Line:
    """One Twilio channel of a running omnidesk, with the stand-in behind it."""

    def __init__(self, desk: Any, http: httpx.Client, url: str, token: str, fake: FakeTwilio, kind: str = "sms",
                 **config: Any) -> None:
        self.desk, self.http, self.fake, self.kind = desk, http, fake, kind
        self.token = token
        if kind == "whatsapp":
            config.setdefault("templates", [TEMPLATE])
        wrong = http.post("/api/v1/channels", headers={"Authorization": token}, json={
            "kind": kind, "name": "wrong", "config": {**fake.config(**config), "auth_token": "0" * 32}})
        assert wrong.status_code == 422 and "credentials" in wrong.json()["detail"]
        channel = desk.ok("POST", "/channels", json={"kind": kind, "name": f"{kind} line",
                                                     "config": fake.config(**config)})
        self.id = channel["id"]
        self.hook = f"{url.rstrip('/')}/webhooks/{self.id}"
        assert channel["webhook_url"] == self.hook
        assert "auth_token" not in channel["config"]

    def address(self, number: str) -> str:
        return f"whatsapp:{number}" if self.kind == "whatsapp" else number

    def post(self, params: dict[str, str], route: str = "", *, signature: str | None = None) -> httpx.Response:
        url = self.hook + (f"/{route}" if route else "")
        body, headers = inbound(self.fake, url, params)
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return self.http.post(url, content=body, headers=headers)

    def message(self, text: str, *, message_sid: str | None = None, frm: str = CUSTOMER, **extra: str) -> str:
        """The customer writes; returns the MessageSid."""
        message_sid = message_sid or sid()
        params = {"MessageSid": message_sid, "SmsSid": message_sid, "AccountSid": self.fake.account_sid,
                  "From": self.address(frm), "To": self.address("+15550001111"), "Body": text,
                  "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01", **extra}
        if self.kind == "whatsapp":
            params.setdefault("ProfileName", "Marta")
            params.setdefault("WaId", frm.lstrip("+"))
        answer = self.post(params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/xml") and b"<Response" in answer.content
        return message_sid

    def conversations(self) -> list[dict[str, Any]]:
        return self.desk.ok("GET", f"/conversations?channel_id={self.id}")["items"]

    def conversation(self) -> dict[str, Any]:
        (found,) = wait_for(lambda: self.conversations() or None, what="the conversation")
        return self.desk.ok("GET", f"/conversations/{found['id']}")

    def reply(self, conversation_id: int, **body: Any) -> httpx.Response:
        path = f"/api/v1/conversations/{conversation_id}/messages"
        return self.http.post(path, json=body, headers={"Authorization": self.token})

    def status_of(self, conversation_id: int, message_id: int) -> dict[str, Any]:
        detail = self.desk.ok("GET", f"/conversations/{conversation_id}")
        return next(m for m in detail["messages"] if m["id"] == message_id)

    def wait_status(self, conversation_id: int, message_id: int, status: str, timeout: float = 30) -> dict[str, Any]:
        return wait_for(lambda: (m := self.status_of(conversation_id, message_id))["status"] == status and m,
                        timeout=timeout, what=f"message {message_id} {status}")


def sms_round_trip(line: Line) -> None:
    """Inbound SMS -> conversation -> agent reply -> the stand-in -> signed callbacks -> delivered;
    the same MessageSid again is stored once; a bad signature stores nothing."""
    first = line.message("Hola, on és la meva comanda?")
    conv = line.conversation()
    assert conv["contact"]["phone"] == CUSTOMER and conv["messages"][0]["text"] == "Hola, on és la meva comanda?"
    line.message("Hola, on és la meva comanda?", message_sid=first)  # Twilio retried
    assert line.post({"MessageSid": sid(), "From": CUSTOMER, "Body": "forged"},
                     signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert len(line.conversation()["messages"]) == 1
    answer = line.reply(conv["id"], text="Surt avui cap a tu. " * 12)  # 240 characters: 2 segments
    assert answer.status_code == 202, answer.text
    message_id = answer.json()["id"]
    wait_for(lambda: line.fake.messages, what="the stand-in to get the reply")
    (sent,) = line.fake.messages
    assert sent.form["To"] == CUSTOMER and sent.form["StatusCallback"] == f"{line.hook}/status?m={message_id}"
    done = line.wait_status(conv["id"], message_id, "delivered")
    assert "2 SMS segments" in done["status_reason"]
    assert line.fake.callback_answers == [200, 200]


def receipts_out_of_order(line: Line) -> None:
    line.fake.callbacks = ["read", "sent", "delivered"]
    line.message("hola")
    conv = line.conversation()
    message_id = line.reply(conv["id"], text="hola!").json()["id"]
    wait_for(lambda: len(line.fake.callback_answers) == 3, what="three callbacks")
    assert line.status_of(conv["id"], message_id)["status"] == "read"


def dropped_connection_sends_once(line: Line) -> None:
    """No receipts: what the reply becomes is the lookup's doing (a receipt would also find it)."""
    line.fake.callbacks = []
    line.fake.drop_after_accept = 1
    line.message("hola")
    conv = line.conversation()
    message_id = line.reply(conv["id"], text="Only once, please").json()["id"]
    done = wait_for(lambda: (m := line.status_of(conv["id"], message_id))["status"] in ("sent", "delivered") and m,
                    timeout=30, what="the reply recorded as sent")
    assert "not sent again" in done["status_reason"]
    assert len(line.fake.messages) == 1
    line.fake.post_status(line.fake.messages[0], "delivered")
    line.wait_status(conv["id"], message_id, "delivered")


def provider_error_fails_readably(line: Line) -> None:
    line.fake.errors_for["+34600999000"] = 21614
    line.message("hola", frm="+34600999000")
    conv = line.conversation()
    message_id = line.reply(conv["id"], text="hi").json()["id"]
    failed = line.wait_status(conv["id"], message_id, "failed")
    assert "cannot receive SMS" in failed["status_reason"] and "21614" in failed["status_reason"]


def whatsapp_window_and_template(line: Line, age_last_message: Any) -> None:
    line.message("¿Tenéis la talla 38?")
    conv = line.conversation()
    assert conv["reply_window_ends_at"] is not None
    age_last_message(conv["id"])
    refused = line.reply(conv["id"], text="Sí, la tenemos")
    assert refused.status_code == 422 and "order_update" in refused.json()["detail"]
    assert line.conversation()["reply_window_ends_at"] < conv["reply_window_ends_at"]
    unknown = line.reply(conv["id"], template={"name": "nope", "variables": {}})
    assert unknown.status_code == 422 and "order_update" in unknown.json()["detail"]
    answer = line.reply(conv["id"], template={"name": "order_update", "variables": {"1": "Marta", "2": "1234"}})
    assert answer.status_code == 202, answer.text
    line.wait_status(conv["id"], answer.json()["id"], "delivered")
    (sent,) = line.fake.messages
    assert sent.form["ContentSid"] == TEMPLATE["content_sid"] and sent.form["To"] == f"whatsapp:{CUSTOMER}"


def refusals_store_nothing(line: Line) -> None:
    """Unsigned, wrongly signed, replayed and malformed webhooks over HTTP."""
    good = {"MessageSid": sid(), "AccountSid": line.fake.account_sid, "From": CUSTOMER, "To": "+15550001111",
            "Body": "hola", "NumMedia": "0"}
    unsigned = line.http.post(line.hook, data=good)
    assert unsigned.status_code == 403 and "X-Twilio-Signature" in unsigned.json()["detail"]
    assert line.post(good, signature="d3Jvbmc=").status_code == 403
    elsewhere = line.post(good, "status")  # signed for /status, replayed to the message route
    body, headers = inbound(line.fake, line.hook + "/status", good)
    assert line.http.post(line.hook, content=body, headers=headers).status_code == 403
    assert elsewhere.status_code == 400  # a message is no receipt: no MessageStatus
    malformed = line.post({**good, "From": "somebody"})
    assert malformed.status_code == 400 and "not a phone number" in malformed.json()["detail"]
    assert line.post({**good, "MessageSid": ""}).status_code == 400
    unknown = line.post({"MessageSid": sid(), "MessageStatus": "delivered"}, "status")
    assert unknown.status_code == 200  # a receipt for a message we never sent: nothing moves
    assert line.conversations() == []
    line.message("hola", message_sid=good["MessageSid"])
    line.message("hola", message_sid=good["MessageSid"])  # replayed as signed: stored once
    assert len(line.conversation()["messages"]) == 1


def voicemail_to_sms_reply(line: Line, audio: bytes) -> None:
    """A call -> TwiML voicemail -> the recording (audio fetched with the account's credentials)
    and its transcription in one conversation -> the agent answers by SMS."""
    call = {"CallSid": sid("CA"), "AccountSid": line.fake.account_sid, "From": CUSTOMER, "To": "+15550001111",
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
    answer = line.post(call, "voice")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/xml")
    assert b"<Record" in answer.content and b"<Say" in answer.content
    recording_sid = sid("RE")
    url = line.fake.add_media(audio, "audio/mpeg", f"{line.fake.base}/Recordings/{recording_sid}.mp3")
    callback = {"RecordingSid": recording_sid, "RecordingUrl": url.removesuffix(".mp3"),
                "RecordingStatus": "completed", "RecordingDuration": "14", "CallSid": call["CallSid"],
                "AccountSid": line.fake.account_sid}
    who = "?from=%2B34600111222"
    assert line.post(callback, "recording" + who).status_code == 200
    assert line.post(callback, "recording" + who).status_code == 200  # Twilio retried: once
    transcription = {"TranscriptionSid": sid("TR"), "TranscriptionText": "Hi, my parcel has not arrived.",
                     "TranscriptionStatus": "completed", "RecordingSid": recording_sid, "CallSid": call["CallSid"],
                     "AccountSid": line.fake.account_sid, "From": CUSTOMER, "To": "+15550001111"}
    assert line.post(transcription, "transcription" + who).status_code == 200
    conv = wait_for(lambda: (c := line.conversation()) and len(c["messages"]) == 2 and c, what="two messages")
    voicemail, text = conv["messages"]
    assert voicemail["text"] == "Voicemail (14 s)" and "my parcel has not arrived" in text["text"]
    (audio_file,) = voicemail["attachments"]
    assert audio_file["content_type"] == "audio/mpeg"
    wait_for(lambda: line.conversation()["messages"][0]["attachments"][0].get("state", "done") == "done",
             what="the audio fetched")
    got = line.http.get(f"/api/v1/attachments/{audio_file['id']}", headers={"Authorization": line.token})
    assert got.status_code == 200 and got.content == audio
    answer = line.reply(conv["id"], text="Hi Marta, it arrives tomorrow.")
    assert answer.status_code == 202
    line.wait_status(conv["id"], answer.json()["id"], "delivered")
    (sent,) = line.fake.messages
    assert sent.form["To"] == CUSTOMER and sent.form["Body"] == "Hi Marta, it arrives tomorrow."


def stop_blocks_until_start(line: Line) -> None:
    line.message("hola")
    conv = line.conversation()
    line.message("STOP", OptOutType="STOP")
    refused = line.reply(conv["id"], text="Are you there?")
    assert refused.status_code == 422 and "STOP" in refused.json()["detail"]
    line.message("START", OptOutType="START")
    answer = line.reply(conv["id"], text="Welcome back")
    assert answer.status_code == 202, answer.text
    line.wait_status(conv["id"], answer.json()["id"], "delivered")
    # Twilio's own record of an opt-out (21610) fails the send and blocks the next reply too.
    line.fake.errors_for[CUSTOMER] = 21610
    failed = line.reply(conv["id"], text="One more").json()["id"]
    assert "unsubscribed" in line.wait_status(conv["id"], failed, "failed")["status_reason"]
    assert line.reply(conv["id"], text="And another").status_code == 422
