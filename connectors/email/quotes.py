"""Separating a reply's new text from the quoted history and the signature, for display (the
full original is kept). The rules are in connectors.email.parse's docstring."""

from __future__ import annotations

import re

from mailparser_reply.constants import GENERIC_MAIL_SEPARATOR, MAIL_LANGUAGES

_LIBRARY_PATTERNS = [
    re.compile(pattern.replace("){1,}", "){2,}"), re.MULTILINE | re.IGNORECASE)  # pl: one "Od:" is not enough
    for language, entries in MAIL_LANGUAGES.items()
    if language != "david"
    for key in ("wrote_header", "from_header")
    if (pattern := entries.get(key))
] + [re.compile(GENERIC_MAIL_SEPARATOR, re.MULTILINE | re.IGNORECASE)]
_OWN_PATTERNS = [
    # "-----Original Message-----", "---------- Forwarded message ---------" and their translations
    re.compile(
        r"^(?:> ?)*-{2,} ?(?:original message|mensaje original|missatge original|mensagem original"
        r"|message d'origine|urspr[üu]ngliche nachricht|messaggio originale|oorspronkelijk bericht"
        r"|wiadomo[śs][ćc] oryginalna|oryginalna wiadomo[śs][ćc]|forwarded message|mensaje reenviado"
        r"|missatge reenviat|mensagem encaminhada|message transf[ée]r[ée]|weitergeleitete nachricht) ?-{2,}$"
        r"|^(?:begin forwarded message|inicio del mensaje reenviado|inici del missatge reenviat):$",
        re.MULTILINE | re.IGNORECASE,
    ),
    # Outlook's header block in the languages of our customers: "From:" then "Sent:" (or translations)
    re.compile(
        r"^(?:> ?)*[* ]*(?:from|de|von|od|da|van|fr[åa]n|fra|exp[ée]diteur|remitente)[* ]*:.*\n"
        r"(?:> ?)*[* ]*(?:sent|date|enviado|enviada|enviat|fecha|data|gesendet|datum|envoy[ée]|wys[łl]ano"
        r"|wys[łl]ane|inviato|verzonden|skickat|sendt)(?: el| em| le| at| on)?[* ]*:",
        re.MULTILINE | re.IGNORECASE,
    ),
]
_WROTE = re.compile(
    r"(?:wrote|escribi[óo]|escreveu|va escriure|a [ée]crit|napisa[łl]\(a\)|napisa[łl]a?|ha scritto|schreef"
    r"|skrev|napsal\(a\)|написал\(а\)|написала?)\s*:$",
    re.IGNORECASE,
)
_WHEN = re.compile(r"\d{1,2}:\d{2}|\b(?:19|20)\d\d\b|\d{1,2}[./]\d{1,2}[./]\d{2,4}")
_SENT_FROM = re.compile(
    r"^(?:sent from my|sent from outlook|get outlook for|enviado desde mi|enviado do meu|enviat des del meu"
    r"|envoy[ée] de mon|von meinem .* gesendet|wys[łl]ane z|inviato da|verzonden met|skickat fr[åa]n min)\b.{0,60}$",
    re.IGNORECASE,
)
_SEPARATOR_LINE = re.compile(r"^[_\-=*]{10,}$")
_HEADER_START = re.compile(r"[>* ]*[^\W\d_][\w .-]{0,25}:")
_PATTERNS = _LIBRARY_PATTERNS + _OWN_PATTERNS


def _could_be_header(line: str, after: str) -> bool:
    """The cheap test run on every line before the library's patterns, which backtrack on long lines."""
    return bool(
        line.endswith((":", "："))
        or after.endswith((":", "："))
        or _HEADER_START.match(line)
        or line.lstrip("> ").startswith(("--", "__"))
    )


def _header_at(stripped: list[str], i: int) -> bool:
    """Does a quote header start at line ``i``: "On <date>, X wrote:" in any language we know (maybe
    wrapped over two lines), an Outlook "From:/Sent:" block, an "-----Original Message-----" line?"""
    line, after = stripped[i], stripped[i + 1] if i + 1 < len(stripped) else ""
    if not _could_be_header(line, after):
        return False
    window = "\n".join(stripped[i : i + 8])
    if any(rx.match(window) for rx in _PATTERNS):
        return True
    bare, after = line.lstrip("> "), after.lstrip("> ")
    if _WROTE.search(bare) and (_WHEN.search(bare) or "@" in bare):
        return True
    return bool(_WROTE.search(after) and not _WHEN.search(after) and _WHEN.search(bare) and bare[-1:] not in ".!?")


def _first_header(stripped: list[str], start: int = 0) -> int | None:
    tried = 0
    for i in range(start, len(stripped)):
        if not _could_be_header(stripped[i], stripped[i + 1] if i + 1 < len(stripped) else ""):
            continue
        if _header_at(stripped, i):
            return i
        tried += 1
        if tried > 1000:  # a bound for hostile input; real quote headers come far earlier
            return None
    return None


def split_reply(text: str) -> tuple[str, str | None]:
    """(new text, quoted history and signature or None). The new text is never empty unless the
    text is: a message that is all quote keeps it all."""
    lines = text.split("\n")
    stripped = [line.strip()[:300] for line in lines]  # bounded: the library's patterns backtrack
    quoted = [i for i, line in enumerate(stripped) if line.startswith(">")]
    header, first = _first_header(stripped), quoted[0] if quoted else None
    if first is None or (header is not None and header < first - 3):  # e.g. Outlook: headers, then text
        cut = len(lines) if header is None else header
    elif _interleaved(stripped, first):  # answers below the quotes: only a later header splits
        later = _first_header(stripped, quoted[-1] + 1)
        cut = len(lines) if later is None else later
    else:  # a ">" quote, maybe under its "On ..., X wrote:" line
        cut = first if header is None else min(header, first)
    if cut < len(lines) and quoted and cut == quoted[0]:  # take the bare attribution line above along
        above = next((i for i in range(cut - 1, max(cut - 3, -1), -1) if stripped[i]), None)
        if above is not None and stripped[above].endswith(":"):
            cut = above
    while cut > 0 and (not stripped[cut - 1] or _SEPARATOR_LINE.match(stripped[cut - 1])):
        cut -= 1
    signature = next((i for i in range(cut) if lines[i].rstrip() == "--"), None)
    last = next((i for i in range(cut - 1, -1, -1) if stripped[i]), None)
    if signature is None and last is not None and _SENT_FROM.match(stripped[last]):
        signature = last
    if signature is not None and any(stripped[:signature]):
        cut = signature
        while cut > 0 and not stripped[cut - 1]:
            cut -= 1
    new = "\n".join(lines[:cut]).strip("\n").rstrip()
    rest = "\n".join(lines[cut:]).strip("\n").rstrip()
    if not new.strip() or not rest.strip():
        return text.strip("\n").rstrip(), None
    return new, rest


def _interleaved(stripped: list[str], first: int) -> bool:
    """True when the writer answered below or between ``>`` quotes instead of above them."""
    end = first
    while end < len(stripped) and (stripped[end].startswith(">") or not stripped[end]):
        end += 1
    if end >= len(stripped) or stripped[end] == "--" or _SENT_FROM.match(stripped[end]):
        return False
    return not _header_at(stripped, end)
