"""The shop's phone line: a call is answered with a greeting and a voicemail; the recording and
its transcription become messages in the caller's conversation (the agent answers by SMS).

Callbacks carry the caller's number in their URL's query (``?from=``): Twilio's recording
callback does not name the caller, and the query is covered by the signature. Both are idempotent:
the recording is the message ``RecordingSid``, its transcription ``RecordingSid/transcription``
(joined to the recording by reference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from twilio.twiml.voice_response import VoiceResponse

from connectors.base import Event, InboundMessage, RemoteAttachment, WebhookRequest
from connectors.errors import PayloadError
from connectors.twilio.config import SmsConfig
from connectors.twilio.parse import Form, number, one, sender, thread_key

if TYPE_CHECKING:
    from connectors.twilio import TwilioConnector


def answer_call(config: SmsConfig, webhook_url: str, caller: str, *, open_now: bool = True) -> bytes:
    """TwiML: the greeting in the shop's language (the closed one outside business hours), then a
    voicemail with transcription."""
    who = quote(caller, safe="")
    response = VoiceResponse()
    greeting = config.voice_greeting if open_now else config.voice_closed_greeting
    response.say(greeting, language=config.voice_language)
    response.record(max_length=config.voice_max_length, play_beep=True, transcribe=True,
                    transcribe_callback=f"{webhook_url}/transcription?from={who}",
                    recording_status_callback=f"{webhook_url}/recording?from={who}",
                    recording_status_callback_event="completed")
    response.hangup()
    return str(response).encode()


def refuse_call() -> bytes:
    response = VoiceResponse()
    response.reject()
    return str(response).encode()


def caller(fields: Form, request: WebhookRequest) -> str:
    return number(fields, "From", fallback=request.query.get("from", ""))


def call(connector: TwilioConnector, fields: Form, request: WebhookRequest) -> list[Event]:
    """A call: nothing to store yet (the voicemail comes by its callbacks); the answer is TwiML."""
    caller(fields, request)  # a call from no number is refused as malformed
    return []


def recording(connector: TwilioConnector, fields: Form, request: WebhookRequest) -> list[Event]:
    sid = one(fields, "RecordingSid", required=True).strip()[:64]
    state = one(fields, "RecordingStatus").strip().lower()
    if state and state != "completed":
        return []
    url = one(fields, "RecordingUrl", required=True).strip()
    if not url.startswith(("https://", "http://")):
        raise PayloadError("invalid webhook: RecordingUrl is not a URL")
    who = caller(fields, request)
    seconds = one(fields, "RecordingDuration").strip()
    audio = RemoteAttachment(ref=f"{url}.mp3", filename=f"voicemail-{sid}.mp3", content_type="audio/mpeg")
    return [InboundMessage(
        external_id=sid, sender=sender(fields, who), thread_key=thread_key(who), raw=request.body,
        text=f"Voicemail{f' ({seconds} s)' if seconds.isdigit() else ''}", remote_attachments=(audio,),
    )]


def transcription(connector: TwilioConnector, fields: Form, request: WebhookRequest) -> list[Event]:
    recording_sid = one(fields, "RecordingSid", required=True).strip()[:64]
    state = one(fields, "TranscriptionStatus").strip().lower()
    text = one(fields, "TranscriptionText").strip()
    if state != "completed" or not text:
        text = "(the voicemail could not be transcribed; listen to the recording)"
    who = caller(fields, request)
    return [InboundMessage(
        external_id=f"{recording_sid}/transcription", sender=sender(fields, who), thread_key=thread_key(who),
        thread_refs=(recording_sid,), text=f"Voicemail transcription: {text}", raw=request.body,
    )]
