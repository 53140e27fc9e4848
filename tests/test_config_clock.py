"""Settings are validated with messages naming the variable; clocks replay the past at a speed."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.config import ConfigError, Secret, settings_from
from bot.core.clock import ReplayClock, SystemClock, make_clock

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gabcde.fake-token-for-tests-only"


def test_defaults():
    settings = settings_from({})
    assert settings.reminder_leads == (5,)
    assert settings.reminder_kinds == {"oral", "spotlight", "talk", "keynote", "workshop", "lightning", "panel", "other"}
    assert settings.schedule_timezone is None
    assert str(settings.schedule_path) == "data/track28.yaml"
    assert settings.clock_speed == 1.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DISCORD_GUILD_ID", "my-server"),
        ("REMINDER_CHANNEL_ID", "12"),
        ("BOT_REPLAY_FROM", "yesterday"),
        ("BOT_REPLAY_FROM", "2020-12-10T05:50"),
        ("BOT_CLOCK_SPEED", "-1"),
        ("REMINDER_LEAD_MINUTES", "five"),
        ("REMINDER_KINDS", "oral,keynoot"),
        ("REMINDER_KINDS", "oral,break"),
        ("SCHEDULE_TIMEZONE", "CEST"),
        ("SCHEDULE_TIMEZONE", "../../etc/passwd"),
        ("REMINDER_GRACE_MINUTES", "-3"),
        ("LOG_LEVEL", "LOUD"),
        ("DISCORD_TOKEN", "two words"),
        ("SHARD_COUNT", "0"),
        ("SHARD_COUNT", "four"),
        ("SHARD_IDS", "0,1"),  # without SHARD_COUNT
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        settings_from({name: value})


def test_several_leads_and_kinds():
    settings = settings_from({"REMINDER_LEAD_MINUTES": "2, 10", "REMINDER_KINDS": "oral,spotlight,qa"})
    assert settings.reminder_leads == (10, 2)
    assert "qa" in settings.reminder_kinds


def test_reminders_by_default_for_every_kind_of_talk_but_not_qa_or_breaks():
    """Track 28 (orals, spotlights, Q&As, breaks) is reminded exactly as before the kinds grew."""
    kinds = settings_from({}).reminder_kinds
    assert {"oral", "spotlight"} <= kinds
    assert "qa" not in kinds
    assert "break" not in kinds
    assert settings_from({"REMINDER_KINDS": "Keynote, workshop"}).reminder_kinds == {"keynote", "workshop"}


def test_schedule_timezone_is_an_iana_zone():
    assert settings_from({"SCHEDULE_TIMEZONE": "Europe/Berlin"}).schedule_timezone.key == "Europe/Berlin"
    assert settings_from({"SCHEDULE_TIMEZONE": "US/Eastern"}).schedule_timezone.key == "US/Eastern"  # legacy names still work


def test_token_never_shows_in_repr_or_format():
    settings = settings_from({"DISCORD_TOKEN": TOKEN})
    assert TOKEN not in repr(settings)
    assert TOKEN not in f"{settings.discord_token}"
    assert TOKEN not in "%s" % (settings.discord_token,)  # noqa: UP031 - the form log lines use
    assert settings.discord_token.reveal() == TOKEN
    assert isinstance(settings.discord_token, Secret)


def test_replay_clock_runs_at_its_speed():
    ticks = iter([100.0, 100.0, 110.0])
    clock = ReplayClock(dt.datetime(2020, 12, 10, 5, 50, tzinfo=dt.timezone(dt.timedelta(hours=-8))), speed=60, monotonic=lambda: next(ticks))
    assert clock.now() == dt.datetime(2020, 12, 10, 13, 50, tzinfo=dt.UTC)
    assert clock.now() == dt.datetime(2020, 12, 10, 14, 0, tzinfo=dt.UTC)


def test_replay_clock_maps_schedule_time_to_real_seconds():
    clock = ReplayClock(dt.datetime(2020, 12, 10, 13, 50, tzinfo=dt.UTC), speed=60, monotonic=lambda: 5.0)
    assert clock.seconds_until(dt.datetime(2020, 12, 10, 14, 0, tzinfo=dt.UTC)) == 10.0


def test_replay_clock_refuses_naive_start():
    with pytest.raises(ValueError):
        ReplayClock(dt.datetime(2020, 12, 10, 5, 50))


def test_make_clock_is_the_system_clock_without_replay():
    assert isinstance(make_clock(None), SystemClock)
    assert isinstance(make_clock(None, 10), ReplayClock)


@pytest.mark.parametrize("ids", ["4", "0,x", "-1", ","])
def test_shard_ids_must_be_shards_of_shard_count(ids):
    with pytest.raises(ConfigError, match="SHARD_IDS"):
        settings_from({"SHARD_COUNT": "4", "SHARD_IDS": ids})


def test_a_process_owns_the_guilds_of_its_shards_only():
    # Discord's rule: a guild's events go to shard (guild_id >> 22) % shard_count.
    guilds = [(shard << 22) + 7 for shard in range(8)]
    settings = settings_from({"SHARD_COUNT": "4", "SHARD_IDS": " 1, 3,1"})
    assert settings.shard_ids == (1, 3)
    assert [settings.shard_of(g) for g in guilds] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert [g for g in guilds if settings.owns_guild(g)] == [guilds[1], guilds[3], guilds[5], guilds[7]]
    assert all(settings_from({"SHARD_COUNT": "4"}).owns_guild(g) for g in guilds)  # every shard: every guild
    assert all(settings_from({}).owns_guild(g) for g in guilds) and not settings_from({}).sharded
