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


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def fold(text: str) -> str:
    """Lowercase, strip accents and punctuation: 'Dokmanić' -> 'dokmanic', '$L_2$' -> 'l2'."""
    text = plain_text(text)
    if text.isascii():
        return _NON_WORD.sub(" ", text.lower()).strip()
    text = unicodedata.normalize("NFKD", text).casefold().translate(_EXTRA_FOLD)
    return _NON_WORD.sub(" ", _COMBINING.sub("", text)).strip()


_WORD = re.compile(r"[0-9a-z]+")


def words(text: str) -> list[str]:
    """The words of `fold(text)`, faster for plain ASCII text (most abstracts)."""
    if text.isascii() and "$" not in text and "\\" not in text and "``" not in text:
        return _WORD.findall(text.lower())
    return fold(text).split()


def shorten(text: str, limit: int, ellipsis: str = "…") -> str:
    """Cut text to at most `limit` characters, at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - len(ellipsis))]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + ellipsis
