"""Text helpers shared by the core: LaTeX made readable, and the folding used for search."""

from __future__ import annotations

import re
import unicodedata

_SUB = str.maketrans("0123456789+-=()aehijklmnoprstuvx", "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ")
_SUP = str.maketrans("0123456789+-=()in", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁱⁿ")
_SUB_OK = set("0123456789+-=()aehijklmnoprstuvx")
_SUP_OK = set("0123456789+-=()in")
_SYMBOLS = {
    "alpha": "α",
    "beta": "β",
    "gamma": "γ",
    "delta": "δ",
    "epsilon": "ε",
    "lambda": "λ",
    "mu": "μ",
    "pi": "π",
    "sigma": "σ",
    "theta": "θ",
    "ell": "ℓ",
    "infty": "∞",
    "times": "×",
    "leq": "≤",
    "geq": "≥",
    "in": "∈",
    "cdot": "·",
}
_MATH = re.compile(r"\$([^$]+)\$")
_SCRIPT = re.compile(r"([_^])(\{([^{}]*)\}|(\\?[A-Za-z0-9]))")
_COMMAND_ARG = re.compile(r"\\(?:emph|textit|textbf|text|mathrm|mathbf|mathcal|operatorname)\{([^{}]*)\}")
_COMMAND = re.compile(r"\\([A-Za-z]+)")


def _script(match: re.Match[str]) -> str:
    body = match.group(3) if match.group(3) is not None else match.group(4)
    table, allowed = (_SUB, _SUB_OK) if match.group(1) == "_" else (_SUP, _SUP_OK)
    if body and set(body) <= allowed:
        return body.translate(table)
    return ("_" if match.group(1) == "_" else "^") + body


def _math(match: re.Match[str]) -> str:
    inner = _SCRIPT.sub(_script, match.group(1))
    inner = _COMMAND.sub(lambda m: _SYMBOLS.get(m.group(1), m.group(1)), inner)
    return inner.replace("{", "").replace("}", "")


def plain_text(text: str) -> str:
    """Render the little LaTeX found in titles and abstracts as readable Unicode."""
    if "$" not in text and "\\" not in text and "``" not in text:
        return text
    text = _MATH.sub(_math, text)
    text = _COMMAND_ARG.sub(r"\1", text)
    return text.replace("``", "“").replace("''", "”")


_EXTRA_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i", "ß": "ss"})
_NON_WORD = re.compile(r"[^0-9a-z]+")

# Accents are dropped: the combining diacritics of Latin, Greek and Cyrillic, Hebrew points,
# Arabic vowel marks and the Arabic tatweel (so "ё" folds to "е" and "й" to "и", on both sides of a search).
_ACCENTS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
    "\u0591-\u05bd\u05bf\u05c1\u05c2\u05c4\u05c5\u05c7"
    "\u0610-\u061a\u0640\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed]+"
)


def _mark_ranges() -> str:
    """A regex class body of the Basic Multilingual Plane's marks (Devanagari vowel signs, Thai tones, ...)."""
    marks = [c for c in range(0x300, 0x10000) if unicodedata.category(chr(c)).startswith("M")]
    ranges: list[list[int]] = []
    for code in marks:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges)


# Any letter or digit of any script is part of a word, and so are the marks that some scripts
# write inside words (left after the accents above are gone); everything else separates words.
_SEPARATORS = re.compile(f"(?:[^\\w{_mark_ranges()}]|_)+")
# Chinese and Japanese do not separate words with spaces: "山田 太郎" and "山田太郎" are one name.
_HAN_KANA = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_GAP = re.compile(f"(?<=[{_HAN_KANA}]) (?=[{_HAN_KANA}])")


def fold(text: str) -> str:
    """Lowercase, strip accents and punctuation, keep every script's letters.

    'Dokmanić' -> 'dokmanic', '$L_2$' -> 'l2', 'Γιάννης' -> 'γιαννησ', '王 小明' -> '王小明'.
    """
    text = plain_text(text)
    if text.isascii():
        return _NON_WORD.sub(" ", text.lower()).strip()
    text = unicodedata.normalize("NFKD", text).casefold().translate(_EXTRA_FOLD)
    # NFC puts back together what NFKD split and is no accent: Hangul syllables, kana with voicing marks.
    text = unicodedata.normalize("NFC", _ACCENTS.sub("", text))
    text = _SEPARATORS.sub(" ", text).strip()
    return _CJK_GAP.sub("", text) if " " in text else text


# ASCII other than [0-9a-z] as a space: translate and split find the words twice as fast as a regex.
ASCII_SPACES = {code: " " for code in range(128) if not ("0" <= chr(code) <= "9" or "a" <= chr(code) <= "z")}


def words(text: str) -> list[str]:
    """The words of `fold(text)`, faster for plain ASCII text (most abstracts)."""
    if text.isascii() and "$" not in text and "\\" not in text and "``" not in text:
        return text.lower().translate(ASCII_SPACES).split()
    return fold(text).split()


def fold_joined(folded: list[str]) -> str:
    """`fold(" ".join(texts))` from the folds of texts with no LaTeX (no "$" or "\\"), each folded once.

    Folding is local to each text, except that Chinese and Japanese on both sides of a space join.
    """
    text = " ".join(filter(None, folded))
    return _CJK_GAP.sub("", text) if not text.isascii() else text


def shorten(text: str, limit: int, ellipsis: str = "…") -> str:
    """Cut text to at most `limit` characters, at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ellipsis))]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + ellipsis
