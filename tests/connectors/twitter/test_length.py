"""X's weighted length, on examples from twitter-text's conformance suite (validate.yml,
WeightedTweetsWithDiscountedEmojiCounterTest and the v1 tweets/lengths sections), and the refusal
of a public reply over 280 weighted characters that ``len()`` would have let through."""

from __future__ import annotations

import pytest

from connectors.errors import PermanentError
from connectors.twitter import TwitterConnector
from connectors.twitter.length import weighted_length

CONFORMANCE = [
    ("This is a test.", 15),
    ("Hi http://test.co", 26),
    ("http://test.co", 23),
    ("test.com", 23),  # a URL without its scheme counts 23 too
    ("Test https://test.com test https://test.com test.com test", 86),
    ("285 chars-" + "xxxxxxxxxx-" * 25, 285),
    ("https://www.twitter.com/aloha " * 10, 240),
    ("H\U0001f431\u263a\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", 7),  # a ZWJ family: one emoji
    ("\U0001f637\U0001f47e\U0001f621\U0001f525\U0001f4a9", 10),
    ("\U0001f64b\U0001f3fd\U0001f468\u200d\U0001f3a4", 4),  # skin tone and ZWJ sequences weigh 2 each
    ("Unicode 9.0 emoji: \U0001f920; \U0001f483; \U0001f483\U0001f3fe", 29),
    ("の" * 140, 280),  # CJK weighs 2
    ("A lié géts halfway arøünd thé wørld béføré thé truth has a chance tø get its pants øn. "
     "Winston Churchill (1874-1965) http://bit.ly/dJpywL", 140),
    ("randomurlrandomurlrandomurlrandomurlrandomurlrandomurlrandomurls.com", 68),  # a 64-character label: no URL
]


@pytest.mark.parametrize(("text", "expected"), CONFORMANCE)
def test_weighted_length_matches_the_conformance_examples(text: str, expected: int) -> None:
    assert weighted_length(text) == expected


PUBLIC = TwitterConnector.capabilities_for("x-thread:1", "tweet:5")
DIRECT = TwitterConnector.capabilities_for("x-dm:1-2", "dm:5")


def test_a_public_reply_is_measured_by_weight_not_by_len() -> None:
    PUBLIC.check_text("の" * 140)  # 140 characters, 280 weighted: exactly the limit
    with pytest.raises(PermanentError) as refused:
        PUBLIC.check_text("の" * 141)  # 141 by len(), far under 280, but 282 as X counts
    assert refused.value.reason.startswith("the reply counts 282 characters as X weighs them")
    assert "at most 280" in refused.value.reason
    emoji = "\U0001f525" * 141  # 141 characters, 282 weighted
    with pytest.raises(PermanentError):
        PUBLIC.check_text(emoji)
    DIRECT.check_text(emoji)  # a DM takes 10,000, counted as characters


def test_a_long_link_counts_23() -> None:
    link = "https://shop.example.com/returns/" + "x" * 300  # 333 characters of link
    text = "a" * 256 + " " + link  # len() 590; X counts 256 + 1 + 23 = 280
    assert weighted_length(text) == 280
    PUBLIC.check_text(text)
    with pytest.raises(PermanentError, match="counts 281"):
        PUBLIC.check_text("a" + text)
