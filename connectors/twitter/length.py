"""How long X counts a tweet: its *weighted* length under twitter-text's v3 rules (the
``twitter-text-parser`` port, which passes the official conformance suite). A URL counts 23
whatever its length, CJK characters and emoji (a whole ZWJ sequence, a flag, a keycap) count 2,
most Latin, Greek, Cyrillic and punctuation 1; text is NFC-normalised first. X refuses a tweet
whose weighted length is over 280 although ``len()`` says less."""

from __future__ import annotations

import dataclasses

from twitter_text import parse_tweet

from connectors.base import Capabilities
from connectors.errors import PermanentError

TWEET_LENGTH = 280  # X's limit, in weighted characters


def weighted_length(text: str) -> int:
    """The length X gives ``text`` (twitter-text v3 configuration)."""
    return int(parse_tweet(text).weightedLength)


@dataclasses.dataclass(frozen=True, slots=True)
class TweetCapabilities(Capabilities):
    """A public reply's capabilities: ``max_text_length`` is in X's weighted characters."""

    def check_text(self, text: str) -> None:
        if self.max_text_length is None:
            return
        weighted = weighted_length(text)
        if weighted > self.max_text_length:
            raise PermanentError(
                f"the reply counts {weighted} characters as X weighs them (links 23, CJK characters and "
                f"emoji 2); a public reply takes at most {self.max_text_length}; shorten it or move the "
                f"conversation to direct messages")
