"""Errors a user can fix: front-ends answer them kindly (ephemeral on Discord), never as tracebacks."""

from __future__ import annotations


class UserError(Exception):
    """A problem with what the user asked; `str()` is the message to show them."""

    def __init__(self, message: str, suggestions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.suggestions = suggestions

    def __str__(self) -> str:
        return self.message


class TalkNotFound(UserError):
    def __init__(self, query: str, suggestions: tuple[str, ...] = ()) -> None:
        hint = " Did you mean one of these?" if suggestions else " Try a word from the title, an author or the abstract."
        super().__init__(f"No talk matches “{query}”.{hint}", suggestions)
        self.query = query


class AuthorNotFound(UserError):
    def __init__(self, query: str, suggestions: tuple[str, ...] = ()) -> None:
        hint = " Did you mean one of these?" if suggestions else " Try a surname, with or without accents."
        super().__init__(f"No author matches “{query}”.{hint}", suggestions)
        self.query = query


class AmbiguousQuery(UserError):
    """Several results score about the same; the user should pick one."""

    def __init__(self, query: str, suggestions: tuple[str, ...], what: str = "talks") -> None:
        super().__init__(f"Several {what} match “{query}” about equally well; the best is first:", suggestions)
        self.query = query


_ASK_FOR = {
    "a talk": "Type a few words to look up a talk, for example a word from its title or an author's surname.",
    "an author": "Type a name to look up an author or a session chair, for example a surname.",
}


class EmptyQuery(UserError):
    def __init__(self, what: str = "a talk") -> None:
        super().__init__(_ASK_FOR.get(what, f"Type a few words to look up {what}."))


class QueryTooLong(UserError):
    """More text than any title or name: refused before searching, which would take seconds."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"That query has {length:,} characters; queries are at most {limit} characters. Try a few words from a title or a name.")
        self.length = length
        self.limit = limit
