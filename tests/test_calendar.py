"""Calendar files: the .ics parses back (icalendar) to the programme, event by event, in UTC; the CLI,
the console and /calendar (the real discord.py client against the stand-in) deliver it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from icalendar import Calendar

from bot.core.calendar import (
    PRODID,
    CalendarTooLarge,
    NoFollowedTalks,
    TalkOrMine,
    calendar_filename,
    calendar_ics,
    event_uid,
    make_calendar,
)
from bot.core.clock import FixedClock
from bot.core.errors import TalkNotFound
from bot.core.schedule import Kind, Schedule
from bot.core.search import SearchIndex
from bot.discord_ui.app import SessionBot
from bot.discord_ui.calendar import DEFER_ABOVE
from bot.sources import load_file
from tests.conftest import PST, ROOT, moved, pst
from tests.standin import InteractionHandle, StandIn, StoredMessage, running_client, would_ping
from tests.standin.interactions import CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE
from tests.standin.validation import EPHEMERAL, FILE_SIZE_MAX, check_message
from tests.test_discord_e2e import TOKEN, complete, make_bot
from tests.test_discord_render import huge_schedule

NOW = pst(5, 0)
BREAKS = {"break-1", "break-2"}


def events(data: bytes) -> dict[str, dict]:
    """The VEVENTs by UID, each as the plain values an independent reader would compare."""
    found = {}
    for event in Calendar.from_ical(data).walk("VEVENT"):
        found[str(event["UID"])] = {
            "start": event.decoded("DTSTART"),
            "end": event.decoded("DTEND"),
            "summary": str(event["SUMMARY"]),
            "description": str(event["DESCRIPTION"]),
            "location": str(event["LOCATION"]),
            "url": str(event.get("URL", "")),
            "stamp": event.decoded("DTSTAMP"),
        }
    return found


def with_talk(schedule: Schedule, talk_id: str, **changes) -> Schedule:
    """The same schedule with one talk's fields replaced."""
    sessions = tuple(
        dataclasses.replace(s, items=tuple(dataclasses.replace(t, **changes) if t.id == talk_id else t for t in s.items)) for s in schedule.sessions
    )
    return Schedule(sessions, schedule.conference, schedule.source)


# ------------------------------------------------------------------ the file, parsed back


def test_the_calendar_parses_back_with_its_headers(schedule):
    calendar = Calendar.from_ical(calendar_ics(schedule, None, NOW))
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]) == PRODID
    assert str(calendar["CALSCALE"]) == "GREGORIAN"
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(calendar["X-WR-CALNAME"]) == "NeurIPS 2020"


def test_every_talk_is_an_event_at_the_programme_s_utc_instants(schedule):
    found = events(calendar_ics(schedule, None, NOW))
    talks = [t for t in schedule.talks if t.kind is not Kind.BREAK]
    assert len(found) == len(talks) == 13
    for talk in talks:
        event = found[f"{talk.id}@neurips-2020.session-bot"]
        assert event["start"] == talk.start and event["end"] == talk.end
        assert event["start"].utcoffset() == dt.timedelta(0) and event["end"].utcoffset() == dt.timedelta(0)
        assert event["summary"] == talk.display_title
        assert event["location"] == "Orals & Spotlights Track 28: Deep Learning"
        assert event["description"].startswith(talk.kind.label)
        assert ", ".join(talk.authors) in event["description"]
        assert talk.display_abstract in event["description"]
        assert event["stamp"] == NOW.astimezone(dt.UTC)
    assert found["shooting-formulation@neurips-2020.session-bot"]["start"] == dt.datetime(2020, 12, 10, 14, 0, tzinfo=dt.UTC)


def test_titles_have_their_latex_made_readable(schedule):
    found = events(calendar_ics(schedule, None, NOW))
    assert found["l2-regularization-dynamics@neurips-2020.session-bot"]["summary"] == "On the training dynamics of deep networks with L₂ regularization"


def test_the_text_is_what_importers_expect(schedule):
    """CRLF only, lines folded at 75 octets, times in UTC (no floating time, no TZID), UTF-8 intact."""
    data = calendar_ics(schedule, None, NOW)
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")[:-1]
    assert max(len(line) for line in lines) <= 75
    assert all(line.decode("utf-8") for line in lines)  # folding never splits a character
    times = [line for line in lines if line.startswith((b"DTSTART", b"DTEND", b"DTSTAMP"))]
    assert len(times) == 3 * 13 and all(re.fullmatch(rb"DT(START|END|STAMP):\d{8}T\d{6}Z", line) for line in times)
    assert b"TZID" not in data and b"VTIMEZONE" not in data


def test_uids_are_stable_across_runs_and_distinct_per_talk(schedule):
    first = calendar_ics(schedule, None, NOW)
    again = calendar_ics(load_file(ROOT / "data" / "track28.yaml")[0], None, NOW + dt.timedelta(days=3))
    assert list(events(first)) == list(events(again))
    assert len(set(events(first))) == 13
    assert first != again  # only DTSTAMP differs
    assert first.replace(b"DTSTAMP:20201210T130000Z", b"DTSTAMP:20201213T130000Z") == again


def test_breaks_only_when_asked(schedule):
    ids = {uid.split("@")[0] for uid in events(calendar_ics(schedule, None, NOW))}
    assert not ids & BREAKS
    with_breaks = {uid.split("@")[0] for uid in events(calendar_ics(schedule, None, NOW, include_breaks=True))}
    assert with_breaks == ids | BREAKS == {t.id for t in schedule.talks}


def test_commas_semicolons_and_newlines_are_escaped_and_read_back(schedule):
    title = 'Commas, semicolons; a backslash \\ and\na new line: "quoted"'
    abstract = "First; second, third.\r\nNew paragraph\twith a tab.\u2028And a Unicode line separator\x00\x1b[31m."
    changed = with_talk(schedule, "shooting-formulation", title=title, abstract=abstract)
    data = calendar_ics(changed, None, NOW)
    assert b'SUMMARY:Commas\\, semicolons\\; a backslash \\\\ and\\na new line: "quoted"' in data
    assert b"\x00" not in data and b"\x1b" not in data and "\u2028".encode() not in data
    event = events(data)["shooting-formulation@neurips-2020.session-bot"]
    assert event["summary"] == title
    assert "First; second, third.\nNew paragraph\twith a tab.\nAnd a Unicode line separator[31m." in event["description"]


def test_a_talk_with_a_page_carries_its_url_and_a_room_is_the_location(schedule):
    changed = with_talk(schedule, "shooting-formulation", url="https://neurips.cc/virtual/2020/protected/poster_1.html?a=b,c")
    changed = Schedule(tuple(dataclasses.replace(s, room="Room 2, East") for s in changed.sessions), changed.conference)
    event = events(calendar_ics(changed, None, NOW))["shooting-formulation@neurips-2020.session-bot"]
    assert event["url"] == "https://neurips.cc/virtual/2020/protected/poster_1.html?a=b,c"
    assert event["description"].endswith("https://neurips.cc/virtual/2020/protected/poster_1.html?a=b,c")
    assert event["location"] == "Room 2, East"


def test_a_real_export_with_rooms_and_days(tmp_path):
    """FOSDEM 2026 (frab XML): hundreds of talks in many rooms over two days, each on its own instant."""
    schedule, _ = load_file(ROOT / "tests" / "data" / "samples" / "fosdem-2026.xml")
    found = events(calendar_ics(schedule, None, NOW))
    talks = [t for t in schedule.talks if t.kind is not Kind.BREAK]
    assert len(found) == len(talks) > 500
    for talk in talks:
        event = found[event_uid(talk, schedule)]
        assert (event["start"], event["end"], event["location"]) == (talk.start, talk.end, schedule.session_of(talk).room or schedule.session_of(talk).name)


# ------------------------------------------------------------------ what to put in it


def test_one_talk_by_query_or_id(schedule, index):
    one = make_calendar(schedule, index, NOW, query="shooting formulation")
    assert one.events == 1 and one.filename == "neurips-2020-shooting-formulation.ics"
    assert list(events(one.data)) == ["shooting-formulation@neurips-2020.session-bot"]
    assert make_calendar(schedule, index, NOW, query="break-1").events == 1  # a break picked by its id is asked for
    with pytest.raises(TalkNotFound):
        make_calendar(schedule, index, NOW, query="zzzqqq xylophone")


def test_the_talks_one_follows(schedule, index):
    mine = make_calendar(schedule, index, NOW, followed=["compositional-explanations", "shooting-formulation", "gone-talk", "shooting-formulation"])
    assert mine.events == 2 and mine.filename == "neurips-2020-mine.ics"
    assert [uid.split("@")[0] for uid in events(mine.data)] == ["shooting-formulation", "compositional-explanations"]
    with pytest.raises(NoFollowedTalks, match="You follow no talks yet: /remind talk"):
        make_calendar(schedule, index, NOW, followed=[])
    with pytest.raises(NoFollowedTalks, match="no longer in the programme"):
        make_calendar(schedule, index, NOW, followed=["gone-talk"])
    with pytest.raises(TalkOrMine):
        make_calendar(schedule, index, NOW, query="shooting", followed=["shooting-formulation"])


def test_over_the_attachment_limit_the_abstracts_go_then_a_kind_refusal(schedule, index):
    full = make_calendar(schedule, index, NOW)
    assert full.abstracts and full.filename == "neurips-2020.ics"
    short = make_calendar(schedule, index, NOW, max_bytes=len(full.data) - 1)
    assert not short.abstracts and short.events == 13 and len(short.data) < len(full.data) // 3
    assert all("A residual network" not in e["description"] for e in events(short.data).values())
    with pytest.raises(CalendarTooLarge, match="MB even without abstracts"):
        make_calendar(schedule, index, NOW, max_bytes=1000)


def test_file_names_are_short_and_plain(schedule):
    odd = with_talk(schedule, "shooting-formulation", id="Ünïcode / talk: 'x'" + "y" * 200)
    talk = next(t for t in odd.talks if t.id.startswith("Ü"))
    name = calendar_filename(odd, talk)
    assert re.fullmatch(r"[a-z0-9-]+\.ics", name) and len(name) <= 80
    assert calendar_filename(Schedule(odd.sessions, "")) == "orals-spotlights-track-28-deep-learning.ics"


# ------------------------------------------------------------------ the command line and the console


def run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULE_", "REMINDER_", "DISCORD_", "STATE_", "BOT_"))}
    clean |= {"STATE_PATH": str(tmp_path / "state" / "bot.sqlite3"), "PYTHONPATH": str(ROOT), "SCHEDULE_PATH": str(ROOT / "data" / "track28.yaml")}
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, cwd=tmp_path, env=clean, timeout=120, check=False)


def test_cli_writes_the_programme_to_standard_output(tmp_path, schedule):
    done = run("ics", "--replay-from", "2020-12-10T05:00-08:00", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == calendar_ics(schedule, None, NOW)
    assert b"13 event(s)" in done.stderr


def test_cli_writes_one_talk_to_a_file(tmp_path):
    done = run("ics", "--talk", "compositional explanations", "-o", "talk.ics", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert list(events((tmp_path / "talk.ics").read_bytes())) == ["compositional-explanations@neurips-2020.session-bot"]


def test_cli_bad_query_is_a_kind_message_and_exit_2(tmp_path):
    done = run("ics", "--talk", "zzzqqq xylophone", "-o", "talk.ics", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "No talk matches" in done.stderr.decode() and b"Traceback" not in done.stderr
    assert not (tmp_path / "talk.ics").exists()


def test_console_writes_the_file_and_prints_its_path(schedule, index, tmp_path):
    from bot.console.app import Console

    console = Console(schedule, index, FixedClock(NOW), PST, files=tmp_path / "state")
    answer = console.handle("/calendar")
    path = tmp_path / "state" / "neurips-2020.ics"
    assert str(path) in answer and "13 events" in answer
    assert len(events(path.read_bytes())) == 13
    answer = console.handle("/calendar l2 regularization")
    assert str(tmp_path / "state" / "neurips-2020-l2-regularization-dynamics.ics") in answer
    assert "No talk matches" in console.handle("/calendar zzzqqq xylophone")


# ------------------------------------------------------------------ /calendar, the real client against the stand-in


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[StandIn]:
    async with StandIn(token=TOKEN) as server:
        with server.redirect():
            yield server
        assert server.internal_errors == []


@pytest_asyncio.fixture
async def bot(standin: StandIn, schedule: Schedule) -> AsyncIterator[SessionBot]:
    async with running_client(make_bot(standin, schedule, FixedClock(NOW)), token=TOKEN) as client:
        yield client


async def ask(standin: StandIn, name: str, options: dict | None = None, *, user_id: int | None = None) -> InteractionHandle:
    """Invoke a command as `user_id`; assert one fast answer within Discord's limits, without pings."""
    handle = await standin.invoke(name, options, user_id=user_id)
    attempt = await handle.wait_attempt(1)
    assert attempt.status in (200, 204), attempt.response
    assert handle.acked_at - handle.created < 1.0
    assert not check_message(handle.data) and not would_ping(handle.callback)
    assert handle.data["allowed_mentions"]["parse"] == []
    return handle


def attachment(message: StoredMessage) -> tuple[str, bytes]:
    """The one file a message carries: its name and its bytes as Discord received them."""
    assert len(message.attachments) == len(message.files) == 1
    return message.attachments[0]["filename"], message.files[0]


async def test_calendar_attaches_the_whole_programme_ephemerally(standin: StandIn, bot: SessionBot, schedule: Schedule) -> None:
    handle = await ask(standin, "calendar")
    assert handle.response_type == CHANNEL_MESSAGE and handle.ephemeral
    name, data = attachment(handle.original)
    assert name == "neurips-2020.ics"
    assert data == calendar_ics(schedule, None, NOW)
    assert len(events(data)) == 13
    assert "13 events" in handle.content and len(handle.content) <= 2000


async def test_calendar_of_one_talk_picked_from_autocomplete(standin: StandIn, bot: SessionBot) -> None:
    choices = await complete(standin, "calendar", "talk", "lagrangian")
    assert choices[0]["value"] == "hamiltonian-lagrangian-constraints"
    handle = await ask(standin, "calendar", {"talk": choices[0]["value"]})
    assert handle.ephemeral
    name, data = attachment(handle.original)
    assert name == "neurips-2020-hamiltonian-lagrangian-constraints.ics"
    assert list(events(data)) == ["hamiltonian-lagrangian-constraints@neurips-2020.session-bot"]
    assert len(await complete(standin, "calendar", "talk", "")) == 13  # no input: the talks to come


async def test_calendar_of_a_bad_query_is_a_kind_ephemeral_answer(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "calendar", {"talk": "zzzqqq xylophone"})
    assert handle.ephemeral and not handle.original.attachments
    assert "No talk matches" in handle.data["embeds"][0]["description"]


async def test_calendar_mine_without_follows_says_how_to_follow(standin: StandIn, bot: SessionBot) -> None:
    handle = await ask(standin, "calendar", {"mine": True})
    assert handle.ephemeral and not handle.original.attachments
    assert "You follow no talks yet: /remind talk" in handle.data["embeds"][0]["description"]
    bot.calendar.followed = lambda user_id: []
    assert "You follow no talks yet" in (await ask(standin, "calendar", {"mine": True})).data["embeds"][0]["description"]


async def test_calendar_mine_has_what_this_user_follows(standin: StandIn, bot: SessionBot) -> None:
    follows = {111: ["compositional-explanations", "shooting-formulation"], 222: ["power-laws-deep-ensembles"]}
    bot.calendar.followed = lambda user_id: follows.get(user_id, [])
    handle = await ask(standin, "calendar", {"mine": True}, user_id=111)
    name, data = attachment(handle.original)
    assert handle.ephemeral and name == "neurips-2020-mine.ics"
    assert [uid.split("@")[0] for uid in events(data)] == ["shooting-formulation", "compositional-explanations"]
    _, data = attachment((await ask(standin, "calendar", {"mine": True}, user_id=222)).original)
    assert [uid.split("@")[0] for uid in events(data)] == ["power-laws-deep-ensembles"]
    both = await ask(standin, "calendar", {"talk": "shooting-formulation", "mine": True}, user_id=111)
    assert "not both" in both.data["embeds"][0]["description"]


async def test_calendar_follows_a_reloaded_programme(standin: StandIn, bot: SessionBot, schedule: Schedule) -> None:
    later = moved(schedule, "shooting-formulation", pst(9, 0))
    bot.programme.accept(later, SearchIndex(later))
    _, data = attachment((await ask(standin, "calendar", {"talk": "shooting-formulation"})).original)
    assert events(data)["shooting-formulation@neurips-2020.session-bot"]["start"] == dt.datetime(2020, 12, 10, 17, 0, tzinfo=dt.UTC)


async def test_a_big_programme_is_deferred_then_attached(standin: StandIn) -> None:
    big = huge_schedule(DEFER_ABOVE + 100)
    async with running_client(make_bot(standin, big, FixedClock(NOW)), token=TOKEN):
        handle = await standin.invoke("calendar")
        [followup] = await handle.wait_followups(1, timeout=20)
    assert handle.response_type == DEFERRED_CHANNEL_MESSAGE and handle.ephemeral
    assert handle.acked_at - handle.created < 1.0
    assert followup.flags & EPHEMERAL
    name, data = attachment(followup)
    assert name == "huge.ics" and len(events(data)) == DEFER_ABOVE + 100


# ------------------------------------------------------------------ the stand-in keeps Discord's rules for files


async def post_files(standin: StandIn, files: list[tuple[str, bytes]]) -> tuple[int, dict]:
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps({"content": "files", "attachments": [{"id": i, "filename": n} for i, (n, _) in enumerate(files)]}))
    for i, (name, data) in enumerate(files):
        form.add_field(f"files[{i}]", data, filename=name, content_type="text/calendar")
    url = f"{standin.url}/api/v10/channels/{standin.channel_id}/messages"
    async with aiohttp.ClientSession() as session, session.post(url, data=form, headers={"Authorization": f"Bot {TOKEN}"}) as response:
        return response.status, await response.json()


async def test_the_stand_in_refuses_eleven_files_and_a_file_over_the_limit(standin: StandIn) -> None:
    status, body = await post_files(standin, [(f"{i}.ics", b"x") for i in range(10)])
    assert status == 200 and len(body["attachments"]) == 10
    status, body = await post_files(standin, [(f"{i}.ics", b"x") for i in range(11)])
    assert (status, body["code"]) == (400, 50035) and "attachments" in body["errors"]
    status, body = await post_files(standin, [("big.ics", b"x" * (FILE_SIZE_MAX + 1))])
    assert (status, body["code"]) == (413, 40005)
