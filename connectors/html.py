"""HTML from customers, made safe to show and readable as text. Channel-neutral (email, web chat).

``sanitize_html`` keeps formatting and drops everything that runs, tracks or overlays: scripts,
event handlers, ``javascript:`` and relative URLs, style rules that load or position anything, and
remote images (the classic read-receipt pixel) unless the caller allows them. ``cid:`` images (the
message's own inline parts) and ``data:image/...`` images stay.

``html_to_text`` renders HTML as plain text with the standard library's parser: blocks and
``<br>`` become line breaks, list items start with ``- `` (``1. `` in ordered lists), links read
``text (url)`` when the two differ, ``<blockquote>`` lines start with ``> `` (so quote splitting
works the same on HTML-only mail), and script/style contents are dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot"}
_CLEAN_CONTENT = {"script", "style", "title", "noscript", "template", "iframe", "object", "xml", "svg", "math"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"style", "title", "lang", "dir", "align", "valign", "bgcolor", "width", "height"},
    "font": {"color", "face", "size"},
    "table": {"border", "cellpadding", "cellspacing", "summary", "charoff", "char"},
    "blockquote": {"cite", "type"},
}
_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight", "text-align",
    "text-decoration", "text-indent", "line-height", "white-space", "vertical-align", "margin", "margin-top",
    "margin-right", "margin-bottom", "margin-left", "padding", "padding-top", "padding-right", "padding-bottom",
    "padding-left", "border", "border-top", "border-right", "border-bottom", "border-left", "border-color",
    "border-style", "border-width", "border-collapse", "width", "height", "max-width", "list-style-type",
}
# Anything in a style value that can load a URL or run code, even inside an allowed property.
_UNSAFE_STYLE = re.compile(r"url\s*\(|expression|javascript:|@import|behavior|-moz-binding|\\", re.IGNORECASE)
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpe?g|webp|bmp);", re.IGNORECASE)


def sanitize_html(html: str, *, allow_remote_images: bool = False) -> str:
    """Safe HTML to show an agent: formatting kept, nothing that runs, tracks or overlays."""

    def keep(tag: str, attr: str, value: str) -> str | None:
        lowered = value.strip().lower()
        if attr == "style":  # drop the declarations that could load or run something, keep the rest
            if "\\" in value:
                return None
            return ";".join(rule for rule in value.split(";") if not _UNSAFE_STYLE.search(rule)) or None
        if attr == "src":
            if lowered.startswith("cid:") or _DATA_IMAGE.match(lowered):
                return value
            if allow_remote_images and lowered.startswith(("http://", "https://")):
                return value
            return None
        if attr in {"href", "cite"}:
            return value if lowered.startswith(_LINK_SCHEMES) else None
        return value

    return nh3.clean(
        html.replace("\x00", ""),
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=keep,
        url_schemes={"http", "https", "mailto", "tel", "cid", "data"},
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        filter_style_properties=_STYLE_PROPERTIES,
        strip_comments=True,
    )


_BLOCK = {
    "address", "article", "aside", "center", "dd", "details", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "header", "hr", "li", "main", "nav", "ol", "section", "summary", "table",
    "tbody", "thead", "tfoot", "tr", "ul", "caption",
}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote"}
_SKIP = {"script", "style", "head", "title", "noscript", "template", "xml", "svg", "math", "iframe", "object"}


class _TextRenderer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.line = ""
        self.line_depth = 0  # blockquote depth of the line being built
        self.depth = 0
        self.skip = 0
        self.pre = 0
        self.lists: list[list[int]] = []  # one [counter] per open list; counter -1 for <ul>
        self.links: list[tuple[str, int]] = []  # (href, position in self.line where the link text starts)

    # -- line building
    def _write(self, text: str) -> None:
        if not self.line:
            self.line_depth = self.depth
        self.line += text

    def _break(self) -> None:
        """End the current line (a no-op on an empty line: blocks never stack blank lines)."""
        if self.line.strip():
            self.lines.append("> " * self.line_depth + self.line.rstrip())
        self.line = ""

    def _paragraph(self) -> None:
        self._break()
        # a blank line between paragraphs of the same quote, not between a quote and the line above it
        if self.lines and self.lines[-1].strip("> ") and self.lines[-1].startswith("> " * self.depth):
            self.lines.append(">" * self.depth if self.depth else "")

    def _trim_blank(self) -> None:
        while self.lines and not self.lines[-1].strip("> "):
            self.lines.pop()

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":  # ends an unclosed <head>, as browsers read it
            self.skip = 0
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        values = {name: value or "" for name, value in attrs}
        if tag == "br":
            if self.line.strip():
                self._break()
            else:
                self.lines.append(">" * self.depth if self.depth else "")
                self.line = ""
        elif tag == "hr":
            self._break()
            self.lines.append("> " * self.depth + "---")
        elif tag == "img":
            alt = (values.get("alt") or "").strip()
            if alt:
                self._write(f"[{alt}]")
        elif tag == "a":
            self.links.append((values.get("href", "").strip(), len(self.line)))
        elif tag in ("ul", "ol"):
            self._break()
            self.lists.append([0 if tag == "ol" else -1])
        elif tag == "li":
            self._break()
            indent = "  " * max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0] >= 0:
                self.lists[-1][0] += 1
                self._write(f"{indent}{self.lists[-1][0]}. ")
            else:
                self._write(f"{indent}- ")
        elif tag in ("td", "th"):
            if self.line.strip():
                self._write(" ")
        elif tag == "blockquote":
            self._break()
            self._trim_blank()  # right under its "On ..., X wrote:" line, as mail clients show it
            self.depth += 1
        elif tag in _PARAGRAPH:
            self._paragraph()
            if tag == "pre":
                self.pre += 1
        elif tag in _BLOCK:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(self.skip - 1, 0)
            return
        if self.skip:
            return
        if tag == "a" and self.links:
            href, start = self.links.pop()
            text = self.line[start:].strip()
            target = href[7:] if href.lower().startswith("mailto:") else href
            shown = href.lower().startswith(("http://", "https://", "mailto:", "tel:"))
            if shown and target and target.rstrip("/") != text.rstrip("/"):
                self._write(f" ({target})" if text else target)
        elif tag in ("ul", "ol"):
            self._break()
            if self.lists:
                self.lists.pop()
        elif tag in _PARAGRAPH:
            self._break()
            if tag == "blockquote":
                self._trim_blank()
                self.depth = max(self.depth - 1, 0)
            if tag == "pre":
                self.pre = max(self.pre - 1, 0)
            self._paragraph()
        elif tag in _BLOCK:
            self._break()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.pre:
            first, *rest = data.split("\n")
            self._write(first)
            for line in rest:
                self.lines.append("> " * self.line_depth + self.line.rstrip())
                self.line = ""
                self._write(line)
            return
        text = re.sub(r"\s+", " ", data)
        if not self.line.strip():
            text = text.lstrip()
        if text:
            self._write(text)

    def text(self) -> str:
        self._break()
        out = "\n".join(line.rstrip() for line in self.lines)
        out = re.sub(r"\n(?:>*\n){2,}", "\n\n", out)  # at most one blank line in a row
        return out.replace("\xa0", " ").strip("\n")


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of ``html`` (see the module docstring for the rules)."""
    renderer = _TextRenderer()
    renderer.feed(html.replace("\x00", ""))
    renderer.close()
    return renderer.text()
