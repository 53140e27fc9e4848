"""Settings from the environment (and `.env`), validated once at start-up.

A bad value stops the bot with a message naming the variable; the token is never printed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.parser import isoparse
from dotenv import dotenv_values

from bot.core.schedule import Kind

DEFAULT_SCHEDULE = Path("data/track28.yaml")
DEFAULT_STATE = Path("state/bot.sqlite3")
KNOWN_KINDS = tuple(k.value for k in Kind if k is not Kind.BREAK)  # breaks never get reminders
DEFAULT_KINDS = frozenset(k for k in KNOWN_KINDS if k != "qa")  # a joint Q&A follows talks that were reminded


class ConfigError(Exception):
    """A setting that cannot be used; the message names it."""


class Secret(str):
    """A string that never shows itself in a repr, a log line or an f-string."""

    def __repr__(self) -> str:
        return "Secret('********')" if self else "Secret('')"

    def __str__(self) -> str:
        return "********" if self else ""

    def __format__(self, spec: str) -> str:
        return str(self)

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class Settings:
    discord_token: Secret = field(default_factory=lambda: Secret(""))
    guild_id: int | None = None
    reminder_channel_id: int | None = None
    schedule_path: Path = DEFAULT_SCHEDULE
    schedule_timezone: ZoneInfo | None = None  # for a schedule file that states no zone and no offsets
    state_path: Path = DEFAULT_STATE
    state_url: Secret | None = None  # STATE_URL=postgresql://...: the state in PostgreSQL instead of STATE_PATH
    replay_from: dt.datetime | None = None
    clock_speed: float = 1.0
    log_level: str = "INFO"
    reminder_leads: tuple[int, ...] = (5,)
    reminder_kinds: frozenset[str] = DEFAULT_KINDS
    reminder_role_id: int | None = None
    reminder_grace_minutes: int = 10
    schedule_url: str | None = None  # http(s) URL of the programme, fetched at start and polled
    schedule_poll_seconds: int = 300
    schedule_max_bytes: int = 50 * 1024 * 1024  # SCHEDULE_MAX_MB: a larger schedule is refused before it is read
    scheduled_events: bool = False  # SCHEDULED_EVENTS: one Discord scheduled event per upcoming talk in DISCORD_GUILD_ID
    qa_channel_id: int | None = None  # QA_CHANNEL_ID: where /ask posts questions; None: the reminder channel
    chair_role_id: int | None = None  # CHAIR_ROLE_ID: members with it are chairs, as are those with Manage Messages
    talk_threads: bool = False  # TALK_THREADS: a public thread on each talk's channel reminder, where its questions go
    shard_count: int | None = None  # SHARD_COUNT: run an AutoShardedClient over this many shards in all
    shard_ids: tuple[int, ...] | None = None  # SHARD_IDS: the shards this process holds (all of them when unset)

    @property
    def sharded(self) -> bool:
        return self.shard_count is not None

    def shard_of(self, guild_id: int) -> int:
        """Discord's rule: the shard that receives a guild's events."""
        return (guild_id >> 22) % (self.shard_count or 1)

    def owns_guild(self, guild_id: int) -> bool:
        """Guild work (its channel reminders, announcements, digests, events) is done by the process holding its shard."""
        if self.shard_count is None or self.shard_ids is None:
            return True
        return self.shard_of(guild_id) in self.shard_ids


def _snowflake(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 15 <= len(raw) <= 20:
        raise ConfigError(f"{name} must be a Discord id (a number of 15 to 20 digits), got {raw!r}")
    return int(raw)


def _replay(env: Mapping[str, str]) -> dt.datetime | None:
    raw = env.get("BOT_REPLAY_FROM", "").strip()
    if not raw:
        return None
    try:
        moment = isoparse(raw)
    except ValueError:
        raise ConfigError(f"BOT_REPLAY_FROM must be an ISO time such as 2020-12-10T05:50-08:00, got {raw!r}") from None
    if moment.tzinfo is None:
        raise ConfigError(f"BOT_REPLAY_FROM needs a UTC offset, e.g. {raw}-08:00")
    return moment


def _speed(env: Mapping[str, str]) -> float:
    raw = env.get("BOT_CLOCK_SPEED", "").strip() or "1"
    try:
        speed = float(raw)
    except ValueError:
        speed = 0.0
    if not 0 < speed <= 10_000:
        raise ConfigError(f"BOT_CLOCK_SPEED must be a number above 0 (1 = real time, 60 = a minute per second), got {raw!r}")
    return speed


def _leads(env: Mapping[str, str]) -> tuple[int, ...]:
    raw = env.get("REMINDER_LEAD_MINUTES", "").strip() or "5"
    try:
        leads = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}, reverse=True))
    except ValueError:
        leads = ()
    if not leads or any(not 0 <= lead <= 24 * 60 for lead in leads):
        raise ConfigError(f"REMINDER_LEAD_MINUTES must be minutes before a talk, e.g. 5 or 10,2; got {raw!r}")
    return leads


def _kinds(env: Mapping[str, str]) -> frozenset[str]:
    raw = env.get("REMINDER_KINDS", "").strip()
    if not raw:
        return DEFAULT_KINDS
    kinds = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    unknown = kinds - set(KNOWN_KINDS)
    if not kinds or unknown:
        raise ConfigError(f"REMINDER_KINDS may list {', '.join(KNOWN_KINDS)}; got {raw!r}")
    return kinds


def _zone(env: Mapping[str, str], name: str) -> ZoneInfo | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} must be an IANA time zone such as Europe/Berlin or America/New_York, got {raw[:80]!r}") from None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")) or any(c.isspace() for c in raw):
        raise ConfigError(f"{name} must be an http:// or https:// URL, got {raw[:80]!r}")
    return raw


def redact_url(url: str) -> str:
    """The URL with its password replaced by ****, fit for a message or a log line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0] + ":****"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[1]}"))


def _state_url(env: Mapping[str, str]) -> Secret | None:
    raw = env.get("STATE_URL", "").strip()
    if not raw:
        return None
    if not raw.startswith(("postgresql://", "postgres://")) or any(c.isspace() for c in raw):
        shown = redact_url(raw) if "://" in raw else raw.split(":", 1)[0] + ":..."
        raise ConfigError(f"STATE_URL must be a PostgreSQL URL such as postgresql://user:password@host:5432/dbname, got {shown[:80]!r}")
    try:
        urlsplit(raw).port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ConfigError(f"STATE_URL has a port that is not a number: {redact_url(raw)[:80]!r}") from None
    return Secret(raw)


def _switch(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("on", "true", "yes", "1"):
        return True
    if raw in ("off", "false", "no", "0"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw[:20]!r}")


def _scheduled_events(env: Mapping[str, str], guild_id: int | None) -> bool:
    enabled = _switch(env, "SCHEDULED_EVENTS")
    if enabled and guild_id is None:
        raise ConfigError("SCHEDULED_EVENTS=on needs DISCORD_GUILD_ID: the server whose Events tab gets one event per upcoming talk")
    return enabled


def _shards(env: Mapping[str, str]) -> tuple[int | None, tuple[int, ...] | None]:
    """SHARD_COUNT (1 to 10,000) and SHARD_IDS (e.g. 0,1: each below SHARD_COUNT); SHARD_IDS needs SHARD_COUNT."""
    count_raw, ids_raw = env.get("SHARD_COUNT", "").strip(), env.get("SHARD_IDS", "").strip()
    if not count_raw:
        if ids_raw:
            raise ConfigError("SHARD_IDS needs SHARD_COUNT: the number of shards all processes share, e.g. SHARD_COUNT=4 SHARD_IDS=0,1")
        return None, None
    count = _int(env, "SHARD_COUNT", 1, 1, 10_000)
    if not ids_raw:
        return count, None
    parts = [part.strip() for part in ids_raw.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise ConfigError(f"SHARD_IDS must list shard numbers separated by commas, e.g. 0,1; got {ids_raw[:80]!r}")
    ids = tuple(sorted({int(part) for part in parts}))
    if ids[-1] >= count:
        raise ConfigError(f"SHARD_IDS may list shards 0 to {count - 1} (SHARD_COUNT={count}); got {ids_raw[:80]!r}")
    return count, ids


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("LOG_LEVEL", "").strip() or "INFO").upper()
    if level not in logging.getLevelNamesMapping():
        raise ConfigError(f"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR; got {level!r}")
    return level


def settings_from(env: Mapping[str, str]) -> Settings:
    """Validate a mapping of variables (the environment) into Settings."""
    token = env.get("DISCORD_TOKEN", "").strip()
    if any(c.isspace() for c in token):
        raise ConfigError("DISCORD_TOKEN does not look like a bot token (copy it from the Developer Portal, Bot tab)")
    shard_count, shard_ids = _shards(env)
    return Settings(
        discord_token=Secret(token),
        guild_id=_snowflake(env, "DISCORD_GUILD_ID"),
        reminder_channel_id=_snowflake(env, "REMINDER_CHANNEL_ID"),
        schedule_path=Path(env.get("SCHEDULE_PATH", "").strip() or DEFAULT_SCHEDULE),
        schedule_timezone=_zone(env, "SCHEDULE_TIMEZONE"),
        state_path=Path(env.get("STATE_PATH", "").strip() or DEFAULT_STATE),
        state_url=_state_url(env),
        replay_from=_replay(env),
        clock_speed=_speed(env),
        log_level=_log_level(env),
        reminder_leads=_leads(env),
        reminder_kinds=_kinds(env),
        reminder_role_id=_snowflake(env, "REMINDER_ROLE_ID"),
        reminder_grace_minutes=_int(env, "REMINDER_GRACE_MINUTES", 10, 0, 24 * 60),
        schedule_url=_url(env, "SCHEDULE_URL"),
        schedule_poll_seconds=_int(env, "SCHEDULE_POLL_SECONDS", 300, 10, 24 * 3600),
        schedule_max_bytes=_int(env, "SCHEDULE_MAX_MB", 50, 1, 4096) * 1024 * 1024,
        scheduled_events=_scheduled_events(env, _snowflake(env, "DISCORD_GUILD_ID")),
        qa_channel_id=_snowflake(env, "QA_CHANNEL_ID"),
        chair_role_id=_snowflake(env, "CHAIR_ROLE_ID"),
        talk_threads=_switch(env, "TALK_THREADS"),
        shard_count=shard_count,
        shard_ids=shard_ids,
    )


def load_settings(env_file: str | Path = ".env", environ: Mapping[str, str] | None = None) -> Settings:
    """The process environment over `.env` (the environment wins), validated."""
    merged = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if Path(env_file).is_file() else {}
    merged.update(os.environ if environ is None else environ)
    return settings_from(merged)
