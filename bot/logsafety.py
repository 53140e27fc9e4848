"""Keep tokens out of log lines, whoever logs them.

At DEBUG, discord.py logs each gateway event as it came ("WebSocket Event: {...}", interaction
tokens included) and each request's URL, and interaction callbacks and follow-ups carry their
token in the path (/interactions/<id>/<token>/callback, /webhooks/<app id>/<token>/...). An
interaction token lets anyone answer as the bot for 15 minutes, so every record is masked before
any handler writes it: `install` puts one RedactingFilter on each handler of the root logger.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from bot.config import Secret

MASK = "<redacted>"

# "token": "..." in JSON and 'token': '...' in a dict's repr; also access_token, refresh_token...
_TOKEN_FIELD = re.compile(r"""(?P<key>(?P<kq>["'])\w*token(?P=kq)\s*:\s*)(?P<q>["'])(?:\\.|(?!(?P=q))[^\\])*(?P=q)""", re.IGNORECASE)
# /interactions/<id>/<token>/callback and /webhooks/<application id>/<token>/messages/...
_TOKEN_PATH = re.compile(r"(?P<head>/(?:interactions|webhooks)/\d+/)[^/?#\s'\"]+")


class RedactingFilter(logging.Filter):
    """Formats each record, then masks token fields, tokens in URL paths and the given secrets.

    The message is formatted before masking, so a token passed as an argument (or inside a dict
    argument) is caught too; the record then carries the masked text and no arguments.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # str.__str__ reveals a Secret: its str() is the stars, which mask nothing.
        self.secrets = sorted({str.__str__(s) for s in secrets if s}, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        text = _TOKEN_FIELD.sub(lambda m: f"{m['key']}{m['q']}{MASK}{m['q']}", text)
        return _TOKEN_PATH.sub(lambda m: f"{m['head']}{MASK}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is, masked, instead of raising here
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.mask(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def install(secrets: Iterable[str | Secret] = (), logger: logging.Logger | None = None) -> RedactingFilter:
    """Put a RedactingFilter on every handler of `logger` (the root by default), and return it.

    A filter on a handler sees the records of every logger that reaches it (discord.*, bot.*,
    aiohttp...), where a filter on a logger would see only that logger's own. Handlers added
    later are not covered: call this after the logging set-up.
    """
    redactor = RedactingFilter(secrets)
    for handler in (logger or logging.getLogger()).handlers:
        for earlier in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(earlier)  # installing twice replaces, never stacks
        handler.addFilter(redactor)
    return redactor


def uninstall(redactor: RedactingFilter, logger: logging.Logger | None = None) -> None:
    for handler in (logger or logging.getLogger()).handlers:
        handler.removeFilter(redactor)
