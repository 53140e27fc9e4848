"""`check` validates any format; `import` writes our YAML, which passes `check` and loads to the same schedule."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.schedule import Schedule
from bot.sources import READERS, detect_format, load_file, parse_bytes
from bot.sources.yaml_writer import to_yaml
from tests.conftest import ROOT, TRACK28

SAMPLES = sorted(p for p in (ROOT / "tests" / "data" / "samples").glob("*") if p.suffix != ".md")


def readable(path: Path) -> bool:
    """The readers are written alongside; a sample waits for its reader."""
    module = READERS[detect_format(path.read_bytes())]
    return (ROOT / (module.replace(".", "/") + ".py")).exists()


def essence(schedule: Schedule) -> list[tuple]:
    """What an import must keep, item by item: the instants in UTC, the room, the speakers in order."""
    return [
        (t.id, t.start.astimezone(dt.UTC), t.end.astimezone(dt.UTC), schedule.session_of(t).room, t.authors, t.title, t.abstract, t.kind, t.url, t.track)
        for t in schedule.talks
    ]


def run(*args: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m bot ...` with its state in tmp_path and no settings from the developer's environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULE_", "REMINDER_", "DISCORD_", "STATE_"))}
    clean |= {"STATE_PATH": str(tmp_path / "state" / "bot.sqlite3"), "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=tmp_path, env=clean, timeout=120, check=False)


# ------------------------------------------------------------------ the round trip, in process


@pytest.mark.parametrize("path", [TRACK28, *SAMPLES], ids=lambda p: p.name)
def test_imported_yaml_loads_to_the_same_schedule(path: Path):
    if not readable(path):
        pytest.skip(f"no reader yet for {path.name}")
    original, _ = load_file(path)
    text = to_yaml(original, header=f"from {path.name}")
    again, warnings = parse_bytes(text.encode("utf-8"), "imported.yaml")
    assert essence(again) == essence(original)
    assert [(s.id, s.name, s.date, s.timezone.key, s.chairs) for s in again.sessions] == [
        (s.id, s.name, s.date, s.timezone.key, s.chairs) for s in original.sessions
    ]
    assert again.conference == original.conference
    assert all("before" in w.message for w in warnings)  # only overlaps the export itself has, allowed by the file


def test_track28_imports_to_its_own_data_word_for_word():
    original, _ = load_file(TRACK28)
    again, warnings = parse_bytes(to_yaml(original).encode(), "again.yaml")
    assert warnings == []
    assert [(t.id, t.kind, t.start, t.end, t.title, t.authors, t.abstract, t.follows) for t in again.talks] == [
        (t.id, t.kind, t.start, t.end, t.title, t.authors, t.abstract, t.follows) for t in original.talks
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Line one\nline two",
        "  leading spaces\nand a trailing one \n",
        "carriage\r\nreturns",
        "nel\x85 and ls\u2028 and ps\u2029",
        "tab\there and a bell \x07 and nul \x00",
        "- looks like a list: {or: a mapping} # and a comment",
        "'quotes' \"both\" and \\ backslash",
        "yes",
        "null",
        "2020-12-10",
        "&anchor *alias !tag %directive @at `tick`",
        "zero\u200bwidth and soft\u00adhyphen and bidi\u202e",
        "emoji 🎉 and ünïcödé",
        "ends with newline\n",
        "|\n>",
    ],
)
def test_every_text_survives_the_yaml_writer(text: str):
    one = "{id: a, kind: talk, start: 2020-12-10T06:00:00Z, end: 2020-12-10T07:00:00Z, title: T}"
    original = parse_bytes(f"sessions:\n  - {{id: s, name: S, date: 2020-12-10, timezone: UTC, items: [{one}]}}\n".encode(), "s.yaml")[0]
    talk = dataclasses.replace(original.talks[0], title=text.strip() or "x", abstract=text.strip(), authors=(text.strip() or "x",), track=text.strip())
    session = dataclasses.replace(original.sessions[0], items=(talk,), name=text.strip() or "x", room=text.strip())
    schedule = Schedule((session,), conference=text.strip())
    again = parse_bytes(to_yaml(schedule).encode(), "t.yaml")[0]
    assert (again.talks[0].title, again.talks[0].abstract, again.talks[0].authors, again.talks[0].track) == (
        talk.title,
        talk.abstract,
        talk.authors,
        talk.track,
    )
    assert (again.sessions[0].name, again.sessions[0].room, again.conference) == (session.name, session.room, schedule.conference)


# ------------------------------------------------------------------ the command line


def test_import_writes_yaml_that_check_accepts(tmp_path: Path):
    out = tmp_path / "out.yaml"
    done = run("import", str(TRACK28), "-o", str(out), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{TRACK28}: 1 session(s), 15 items, 0 warnings -> {out}" in done.stderr
    checked = run("check", str(out), tmp_path=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "track28: Orals & Spotlights Track 28: Deep Learning" in checked.stdout
    assert f"{out}: OK, 1 session(s), 15 items, 0 warnings" in checked.stdout


def test_import_without_output_writes_to_stdout(tmp_path: Path):
    done = run("import", str(TRACK28), tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Imported from ")
    assert parse_bytes(done.stdout.encode(), "stdout.yaml")[0].talk("l2-regularization-dynamics")


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_check_and_import_take_every_real_export(path: Path, tmp_path: Path):
    if not readable(path):
        pytest.skip(f"no reader yet for {path.name}")
    schedule, warnings = load_file(path)
    done = run("check", str(path), "-v", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(schedule.sessions) + len(warnings) + 1
    assert lines[-1] == f"{path}: OK, {len(schedule.sessions)} session(s), {len(schedule.talks)} items, {len(warnings)} warning{'s' * (len(warnings) != 1)}"
    out = tmp_path / "imported.yaml"
    assert run("import", str(path), "-o", str(out), tmp_path=tmp_path).returncode == 0
    checked = run("check", str(out), tmp_path=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"{len(schedule.talks)} items" in checked.stdout


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("huge.json", None, "more than the 50 MB"),
        ("latin1.yaml", "conference: Café\n".encode("latin-1"), "not UTF-8 text: byte 0xe9 at line 1, column 16"),
        ("notes.txt", b"Remember to book the rooms.\n", "not a schedule format this bot reads"),
        ("bad.yaml", b"sessions:\n  - id: s1\n    name: [oops\n", "YAML syntax error"),
    ],
)
def test_check_and_import_refuse_with_exit_2_and_no_traceback(tmp_path: Path, name: str, data: bytes | None, expected: str):
    path = tmp_path / name
    if data is None:
        with path.open("wb") as handle:
            handle.truncate(200 * 2**20)
    else:
        path.write_bytes(data)
    for command in ("check", "import"):
        done = run(command, str(path), tmp_path=tmp_path)
        assert done.returncode == 2
        assert f"{path}" in done.stderr
        assert expected in done.stderr
        assert "Traceback" not in done.stderr + done.stdout


def test_import_names_a_bad_zone_option(tmp_path: Path):
    done = run("import", str(TRACK28), "--schedule-tz", "Mars/Olympus", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "--schedule-tz: unknown time zone 'Mars/Olympus'" in done.stderr


FLOATING_ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//\r\nBEGIN:VEVENT\r\nUID:Opening@conf.example\r\nDTSTART:20240101T100000\r\n"
    "DTEND:20240101T110000\r\nSUMMARY:Opening\r\nLOCATION:Hall\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def test_a_file_with_no_zone_needs_schedule_timezone_and_then_imports_as_plain_block_yaml(tmp_path: Path):
    path = tmp_path / "floating.ics"
    path.write_text(FLOATING_ICS, encoding="utf-8")
    refused = run("check", str(path), tmp_path=tmp_path)
    assert refused.returncode == 2
    assert "SCHEDULE_TIMEZONE" in refused.stderr
    done = run("import", str(path), tmp_path=tmp_path, env={"SCHEDULE_TIMEZONE": "Europe/Berlin"})
    assert done.returncode == 0, done.stderr
    assert "    start: 2024-01-01T10:00:00+01:00\n" in done.stdout  # written out plainly, in the session's zone
    assert "{" not in done.stdout
    assert "!" not in done.stdout
    talk = parse_bytes(done.stdout.encode(), "out.yaml")[0].talk("opening-conf.example")
    assert talk.start == dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)
    assert run("check", str(path), "--schedule-tz", "Europe/Berlin", tmp_path=tmp_path).returncode == 0


HOSTILE = {
    "truncated.json": b'{"schedule": {"version": "1", "conference": {"title": "X", "days": [{"index": 0, ',
    "types.json": b'{"schedule": {"conference": {"title": ["X"], "time_zone_name": 5, "days": "soon"}}}',
    "external.xml": b'<?xml version="1.0"?>\n<!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<schedule><conference><title>&x;</title></conference></schedule>',
    "bomb.xml": b'<?xml version="1.0"?>\n<!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>\n<schedule><title>&b;</title></schedule>',
    "empty.ics": b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//\r\nEND:VCALENDAR\r\n",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_malformed_or_hostile_exports_are_refused_with_their_place(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name])
    done = run("check", str(path), tmp_path=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(f"{path}: schedule refused")
    assert "Traceback" not in done.stderr + done.stdout
    assert "root:" not in done.stderr  # nothing of /etc/passwd
