"""tweepy's client pointed at the channel's API base, and X's failures as ours, in one place.

tweepy hard-codes ``https://api.twitter.com``; a mounted adapter sends its requests to the
configured base instead (a local stand-in in tests) and gives every request a timeout (tweepy
sets none). Answers come back as ``requests.Response``: their JSON and their ``x-rate-limit-*``
headers are read here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
import tweepy
from requests.adapters import HTTPAdapter

from connectors.errors import ConfigError, PermanentError, RecipientUnreachable, TransientError
from connectors.twitter.config import DEFAULT_API, TwitterConfig

# tweepy logs every request's headers (the bearer token) and oauthlib its signing at DEBUG: with
# omnidesk at DEBUG they would write the channel's secrets to the log. They say nothing below WARNING.
for _name in ("tweepy", "oauthlib", "requests_oauthlib"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# Fields asked for, so a tweet or DM event carries what the conversation needs.
TWEET_FIELDS = "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,lang,attachments"
DM_FIELDS = "id,text,event_type,created_at,dm_conversation_id,sender_id,participant_ids,attachments"
USER_FIELDS = "name,username"
MEDIA_FIELDS = "type,url,preview_image_url,variants"


class Redirect(HTTPAdapter):
    """Sends what tweepy addresses to ``https://api.twitter.com`` to ``base``, with a timeout."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(max_retries=0)
        self.base, self.timeout = base, timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.base != DEFAULT_API and request.url and request.url.startswith(DEFAULT_API):
            request.url = self.base + request.url[len(DEFAULT_API):]
        kwargs["timeout"] = kwargs.get("timeout") or self.timeout
        return super().send(request, **kwargs)


def client(config: TwitterConfig) -> tweepy.Client:
    bearer = config.bearer_token.get_secret_value() if config.bearer_token else None
    made = tweepy.Client(bearer_token=bearer, consumer_key=config.consumer_key,
                         consumer_secret=config.consumer_secret.get_secret_value(),
                         access_token=config.access_token,
                         access_token_secret=config.access_token_secret.get_secret_value(),
                         return_type=requests.Response)
    made.session.mount(DEFAULT_API, Redirect(config.api_base_url, config.timeout))
    return made


def read(what: str, request: Callable[[], requests.Response]) -> dict[str, Any]:
    """:func:`call` for a read that comes back with the window left: X answers 429 to the next
    read once ``x-rate-limit-remaining`` is 0, so a walk that needs more pages stops here instead,
    as if it had (TransientError until the reset), and keeps what it has."""
    response: list[requests.Response] = []

    def keep() -> requests.Response:
        response.append(request())
        return response[0]

    body = call(what, keep)
    if response and response[0].headers.get("x-rate-limit-remaining") == "0":
        wait = reset_in(response[0])
        until = datetime.fromtimestamp(time.time() + wait, UTC).strftime("%H:%M:%S UTC")
        body[SPENT] = TransientError(f"{what}: X's rate limit is used up; trying again after {until}",
                                     retry_after=wait)
    return body


SPENT = "omnidesk:spent"  # a page's key for the TransientError the next read would meet


def call(what: str, request: Callable[[], requests.Response], *, sending: bool = False) -> dict[str, Any]:
    """Run one tweepy call and return its JSON; X's failures become ours (see connectors.errors):
    429 and 5xx and the network are transient (429 until ``x-rate-limit-reset``), 401 is the
    channel's login, 403 on a read is the app's access level and on a send the recipient or the
    content (permanent; RecipientUnreachable when X says the customer blocked the account), other
    4xx permanent with X's own words."""
    try:
        response = request()
    except tweepy.TooManyRequests as exc:
        wait = reset_in(exc.response)
        until = datetime.fromtimestamp(time.time() + wait, UTC).strftime("%H:%M:%S UTC")
        raise TransientError(f"{what}: X's rate limit is reached; trying again after {until}",
                             retry_after=wait) from None
    except tweepy.TwitterServerError as exc:
        raise TransientError(f"{what}: X answered {exc.response.status_code} ({describe(exc)})") from None
    except tweepy.Unauthorized as exc:
        raise ConfigError(f"{what}: X refused the channel's credentials ({describe(exc)})", auth=True) from None
    except tweepy.Forbidden as exc:
        if sending:
            words = describe(exc)
            # Blocked: no reply of any kind reaches them. DMs closed or a tweet deleted: only this one.
            refused = RecipientUnreachable if "block" in words.lower() else PermanentError
            raise refused(f"{what}: X refused it ({words})") from None
        raise ConfigError(f"{what}: X does not allow this app or account to read it ({describe(exc)})") from None
    except tweepy.HTTPException as exc:
        raise PermanentError(f"{what}: X answered {exc.response.status_code} ({describe(exc)})") from None
    except requests.RequestException as exc:
        raise TransientError(f"{what}: cannot reach X ({type(exc).__name__})") from None
    try:
        body = response.json()
    except ValueError:
        raise TransientError(f"{what}: X answered {response.status_code} with no JSON") from None
    if not isinstance(body, dict):
        raise TransientError(f"{what}: X answered with an unexpected body")
    return body


def reset_in(response: requests.Response, *, now: float | None = None) -> float:
    """Seconds until the rate-limit window of ``response`` resets (at least 1; 60 when X did not
    say)."""
    try:
        reset = float(response.headers["x-rate-limit-reset"])
    except (KeyError, TypeError, ValueError):
        return 60.0
    return max(1.0, reset - (time.time() if now is None else now))


def describe(exc: tweepy.HTTPException) -> str:
    """X's own words for a failure: its ``errors`` messages, else the problem's detail or title."""
    if exc.api_messages:
        return "; ".join(str(m) for m in exc.api_messages)[:500]
    try:
        body = exc.response.json()
    except ValueError:
        return exc.response.reason or str(exc.response.status_code)
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or exc.response.status_code)[:500]
    return str(exc.response.status_code)




def download(session: requests.Session, url: str, auth: Any, max_bytes: int,
             timeout: float) -> tuple[bytes, str | None]:
    """A media file X holds (DM media need the account's OAuth 1.0a signature): its bytes and type.
    PermanentError when larger than ``max_bytes`` or refused, TransientError for 429, 5xx and the
    network."""
    try:
        with session.get(url, auth=auth, stream=True, timeout=timeout) as response:
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientError(f"X answered {response.status_code} for the file",
                                     retry_after=reset_in(response) if response.status_code == 429 else None)
            if response.status_code >= 400:
                raise PermanentError(f"X refused the file ({response.status_code} {response.reason})")
            data = bytearray()
            for chunk in response.iter_content(64 * 1024):
                data += chunk
                if len(data) > max_bytes:
                    raise PermanentError(f"the file is larger than {max_bytes} bytes")
            return bytes(data), response.headers.get("content-type")
    except requests.RequestException as exc:
        raise TransientError(f"cannot fetch the file from X ({type(exc).__name__})") from None
