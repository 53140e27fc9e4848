"""Abstracts from exports made readable: HTML and Markdown become plain text that is safe in Discord.

pretalx writes Markdown, FOSDEM writes HTML, frab writes either. A reader of a Discord message should
see the words, the links and the list items, never a raw tag, an entity or a formatting mark, and
nothing in an abstract may ping anyone. Only the standard library parses: nothing is fetched.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "section", "article", "header", "footer", "aside", "figure", "table", "dl"}
_LINE = {"tr", "dt", "dd", "figcaption", "caption", "address", "center", "main", "nav", "details", "summary"}
_INLINE = {
    *("a", "b", "strong", "i", "em", "u", "s", "strike", "del", "ins", "code", "span", "small", "big", "sup", "sub", "mark"),
    *("abbr", "cite", "q", "kbd", "var", "samp", "font", "tt", "time", "label", "thead", "tbody", "tfoot", "wbr", "html", "body"),
}
_HIDDEN = {"script", "style", "head", "template", "noscript", "svg", "math", "iframe", "object", "button", "select"}
_LISTS = {"ul", "ol", "menu"}
_VOID = {"br", "hr", "img", "wbr", "input", "meta", "link"}
_HTML_DOCUMENT = re.compile(r"<(p|div|br|li|ul|ol|h[1-6]|table|tr|blockquote|pre)\b[^>]*>", re.IGNORECASE)
_LINK_SCHEMES = ("http://", "https://", "mailto:")


class _PlainText(HTMLParser):
    """Collects the text of an HTML fragment with paragraphs, lines, list items and link targets kept."""

    def __init__(self, *, collapse: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.collapse = collapse  # HTML: runs of whitespace are one space; Markdown text keeps its lines
        self.parts: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.lists: list[list[int]] = []  # per open list: [ordered, next number]
        self.links: list[tuple[str, int]] = []  # per open <a>: (href, index of its first part)
        self.cells = 0

    def text(self) -> str:
        return "".join(self.parts)

    def _newlines_at_end(self) -> int:
        tail = "".join(self.parts[-4:]).rstrip(" ")
        count = len(tail) - len(tail.rstrip("\n"))
        return 2 if count == len(tail) and len(self.parts) <= 4 else count  # nothing written yet: a fresh paragraph

    def _break(self, lines: int) -> None:
        missing = lines - self._newlines_at_end()
        if missing > 0:
            self._strip_trailing_spaces()
            self.parts.append("\n" * missing)

    def _strip_trailing_spaces(self) -> None:
        while self.parts and self.parts[-1].endswith(" ") and not self.pre:
            self.parts[-1] = self.parts[-1].rstrip(" ")
            if not self.parts[-1]:
                self.parts.pop()
                continue
            break

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif self.hidden:
            return
        elif tag == "br":
            self._strip_trailing_spaces()
            self.parts.append("\n")
        elif tag in _BLOCK or tag == "hr":
            self._break(2)
        elif tag in _LINE or tag == "pre":
            self.pre += tag == "pre"
            self._break(1)
        elif tag in _LISTS:
            self._break(1 if self.lists else 2)
            self.lists.append([tag == "ol", 1])
        elif tag == "li":
            self._item()
        elif tag in {"td", "th"}:
            self.cells += 1
            if self.cells > 1:
                self.parts.append(" | ")
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            self.links.append((href if href.lower().startswith(_LINK_SCHEMES) else "", len(self.parts)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.parts.append(alt)
        elif tag not in _INLINE:
            self.parts.append(self.get_starttag_text() or "")  # not HTML: "List<String>" stays as written

    def _item(self) -> None:
        self._break(1)
        if not self.lists:
            self.parts.append("• ")
            return
        ordered, number = self.lists[-1]
        self.lists[-1][1] += 1
        self.parts.append("  " * (len(self.lists) - 1) + (f"{number}. " if ordered else "• "))

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif self.hidden or tag in _VOID:
            return
        elif tag in _BLOCK:
            self._break(2)
        elif tag in _LINE or tag == "pre":
            self.pre = max(0, self.pre - (tag == "pre"))
            self.cells = 0 if tag == "tr" else self.cells
            self._break(1)
        elif tag in _LISTS:
            if self.lists:
                self.lists.pop()
            self._break(1 if self.lists else 2)
        elif tag == "a" and self.links:
            self._close_link(*self.links.pop())
        elif tag not in _INLINE and tag not in {"li", "td", "th"}:
            self.parts.append(f"</{tag}>")

    def _close_link(self, href: str, first: int) -> None:
        label = "".join(self.parts[first:]).strip()
        target = href.removeprefix("mailto:")
        if href and _bare(target) not in _bare(label):
            self.parts.append(f" ({target})" if label else target)

    def handle_data(self, data: str) -> None:
        if self.hidden or not data:
            return
        if self.collapse and not self.pre:
            data = re.sub(r"\s+", " ", data)
            if self._newlines_at_end():
                data = data.lstrip(" ")
        self.parts.append(data)


def _bare(url: str) -> str:
    return re.sub(r"^(https?://)?(www\.)?", "", url.strip().lower()).rstrip("/")


# --------------------------------------------------------------------------- Markdown

_FENCED = re.compile(r"^ {0,3}(```|~~~)[^\n]*\n(.*?)(?:^ {0,3}\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# Line rules, each applied to one line at a time (only lines that start with a mark).
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_=])(?:[ \t]*\1){2,}[ \t]*$")
_TABLE_RULE = re.compile(r"^ {0,3}\|?[ \t]*:?-{3,}:?[ \t]*(\|[ \t]*:?-{3,}:?[ \t]*)+\|?[ \t]*$")
_QUOTE = re.compile(r"^ {0,3}(?:>[ \t]?)+")
_BULLET = re.compile(r"^([ \t]*)[*+-][ \t]+")
_LINE_MARKS = tuple("#>-*+_=|:")
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]+)\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^\"'\n]*[\"'])?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>", re.IGNORECASE)
_STRONG = re.compile(r"(\*\*|__|~~)(?=\S)(.+?)(?<=\S)\1", re.DOTALL)
_STAR = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_UNDERSCORE = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|])")


def _link(match: re.Match[str]) -> str:
    label, url = match.group(1).strip(), match.group(2)
    if not url.lower().startswith(_LINK_SCHEMES):
        return label
    url = url.removeprefix("mailto:")
    return label if _bare(url) in _bare(label) else f"{label} ({url})"


# (rule, replacement, what a text must contain for the rule to apply): skipping the rest keeps 10,000 abstracts fast
_INLINE_RULES: tuple[tuple[re.Pattern[str], object, str], ...] = (
    (_IMAGE, r"\1", "!["),
    (_LINK, _link, "]("),
    (_AUTOLINK, lambda m: m.group(1).removeprefix("mailto:"), "<"),
    (_STRONG, r"\2", "**"),
    (_STRONG, r"\2", "__"),
    (_STRONG, r"\2", "~~"),
    (_STAR, r"\1", "*"),
    (_UNDERSCORE, r"\1", "_"),
)


def _markdown_line(line: str) -> str:
    if not line.lstrip(" \t").startswith(_LINE_MARKS):
        return line
    if _TABLE_RULE.match(line) or _RULE.match(line):
        return ""
    line = _HEADING.sub(r"\1", line)
    line = _QUOTE.sub("", line)
    return _BULLET.sub(r"\1• ", line)


def _markdown(text: str) -> str:
    text = "\n".join(map(_markdown_line, text.split("\n")))
    for rule, replacement, needs in _INLINE_RULES:
        if needs in text:
            text = rule.sub(replacement, text)  # type: ignore[call-overload]
    return text


# --------------------------------------------------------------------------- Discord safety

_EVERYONE = re.compile(r"@(everyone|here)\b", re.IGNORECASE)
_MENTION = re.compile(r"<(@[!&]?|#)(?=\d)")
_SPACES = re.compile(r"(?<=\S) {2,}")  # inside a line; the indent of a nested list item stays
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def neutralise_mentions(text: str) -> str:
    """@everyone, @here and <@id>/<@&id>/<#id> with a zero-width space inside, so nothing pings or links."""
    return _MENTION.sub("<\u200b\\1", _EVERYONE.sub("@\u200b\\1", text))


def _tidy(text: str) -> str:
    text = "\n".join(_SPACES.sub(" ", line.rstrip()) if "  " in line else line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


_MARKUP = ("`", "~", "<", "&", "\\", "@", "*", "_", "[", "  ")  # what a rule below looks for (with a line's first character and the ends)
_FIRST_MARKS = frozenset("#>-*+_=|: ")
_UNPRINTABLE_OR_MARK = bytes([*range(32), 127]) + "".join(mark for mark in _MARKUP if len(mark) == 1).encode()  # in ASCII


def readable(text: str) -> str:
    """Plain, Discord-safe text from HTML or Markdown: words, links as text, list items as lines."""
    if not text:
        return ""
    if text[0] not in _FIRST_MARKS and text[-1] != " " and _unchanged(text):
        return text  # one printable line that no rule below would change: most abstracts of a big conference
    return _readable(text)


def _unchanged(text: str) -> bool:
    """Printable, and no mark of _MARKUP: plain ASCII (most abstracts) is checked in one pass over its bytes."""
    if text.isascii():
        data = text.encode("ascii")
        return len(data.translate(None, _UNPRINTABLE_OR_MARK)) == len(data) and "  " not in text
    return text.isprintable() and not any(mark in text for mark in _MARKUP)


def _readable(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    "))
    literal: list[str] = []  # code and escaped marks, kept out of every rule below and put back at the end

    def keep(match: re.Match[str]) -> str:
        literal.append(match.group(1) if match.re is _ESCAPE else match.group(2).strip("\n") if match.re is _FENCED else match.group(2).strip())
        return f"\x00{len(literal) - 1}\x00"

    if "```" in text or "~~~" in text:
        text = _FENCED.sub(keep, text)
    if "`" in text:
        text = _CODE_SPAN.sub(keep, text)
    html = bool(_HTML_DOCUMENT.search(text))
    if not html:  # Markdown: the marks go; HTML inside it is still read below
        text = _markdown(_ESCAPE.sub(keep, text))
    if "<" in text or "&" in text:  # tags or entities to read; plain text skips the parser
        parser = _PlainText(collapse=html)
        parser.feed(text)
        parser.close()
        text = parser.text()
    text = _tidy(text)
    if literal:
        text = re.sub(r"\x00(\d+)\x00", lambda m: literal[int(m.group(1))], text)
    return neutralise_mentions(text)
