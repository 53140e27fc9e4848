"""The terminal console answers what a Discord user would type, piped or interactive."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

from bot.console.app import Console, run_console
from bot.core.clock import FixedClock
from tests.conftest import PST, ROOT, pst


def console_at(schedule, index, now) -> Console:
    return Console(schedule, index, FixedClock(now), PST)


def run_piped(*args: str, stdin: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"} | (env or {})
    return subprocess.run([sys.executable, "-m", "bot", *args], input=stdin, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=60, check=False)


def test_piped_commands_get_one_answer_each_then_exit():
    done = run_piped("console", "--replay-from", "2020-12-10T07:12-08:00", stdin="/next\n/talk hamiltonain\n/author dokmanic\n")
    assert done.returncode == 0, done.stderr
    answers = [block for block in done.stdout.split("\n\n") if block.strip()]
    assert len(answers) == 3
    assert answers[0].startswith("Next up:")
    assert answers[1].startswith("Simplifying Hamiltonian and Lagrangian Neural Networks via Explicit Constraints")
    assert answers[2].startswith("Ivan Dokmanić — 1 talk")
    assert "Traceback" not in done.stderr


def test_replay_clock_from_the_environment_and_another_zone():
    done = run_piped("console", "--tz", "Europe/Paris", stdin="/now\n", env={"BOT_REPLAY_FROM": "2020-12-10T06:05-08:00"})
    assert done.returncode == 0, done.stderr
    assert "On now: [Oral] A shooting formulation of deep learning (until 15:15 CET" in done.stdout


def test_without_token_and_without_terminal_exits_2_with_help():
    done = run_piped(stdin="")
    assert done.returncode == 2
    assert "DISCORD_TOKEN" in done.stderr
    assert "python -m bot console" in done.stderr


def test_bad_settings_are_named():
    done = run_piped("console", stdin="/next\n", env={"BOT_CLOCK_SPEED": "fast"})
    assert done.returncode == 2
    assert "BOT_CLOCK_SPEED" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_zone_is_a_usage_error():
    done = run_piped("console", "--tz", "Mars/Olympus", stdin="/next\n")
    assert done.returncode == 2
    assert "unknown time zone" in done.stderr


def test_abstract_shows_the_full_readable_abstract(schedule, index):
    text = console_at(schedule, index, pst(5)).handle("/abstract l2 regularization")
    assert "We study the role of L₂ regularization" in text
    assert "Aitor Lewkowycz, Guy Gur-Ari" in text
    assert "Oral · Thu 10 Dec 06:15–06:30 PST" in text


def test_user_mistakes_are_answered_not_raised(schedule, index):
    console = console_at(schedule, index, pst(5))
    assert "Unknown command" in console.handle("/frobnicate")
    assert "No talk matches" in console.handle("/talk qqqxxzz")
    assert "Type a few words" in console.handle("/talk")
    assert "1. 06:00 Oral · A shooting formulation of deep learning" in console.handle("/talk deep learning")


def test_schedule_lists_every_item(schedule, index):
    text = console_at(schedule, index, pst(5)).handle("/schedule")
    assert text.count("\n  ") == 15
    assert "chairs: Oriol Vinyals, Guido Montufar" in text


def test_help_lists_the_commands(schedule, index):
    text = console_at(schedule, index, pst(5)).handle("/help")
    for command in ["/next", "/now", "/schedule", "/talk", "/abstract", "/author"]:
        assert command in text


def test_run_console_stops_at_quit(schedule, index):
    out = io.StringIO()
    code = run_console(console_at(schedule, index, pst(5)), io.StringIO("/now\n/quit\n/next\n"), out, interactive=False)
    assert code == 0
    assert "Next up" not in out.getvalue()
    assert "starts on Thu 10 Dec 2020" in out.getvalue()


def test_next_says_something_at_every_minute_of_the_session(schedule, index):
    for minute in range(5 * 60, 10 * 60, 5):
        now = pst(minute // 60, minute % 60)
        assert console_at(schedule, index, now).handle("/next"), now
    assert "no more talks" in console_at(schedule, index, pst(8, 35)).handle("/next")
    assert "no more talks" in console_at(schedule, index, pst(8, 45)).handle("/next")


def test_an_overlong_query_gets_a_kind_answer_at_once(schedule, index):
    console = console_at(schedule, index, pst(5))
    for command in ["/talk", "/abstract", "/author"]:
        t0 = time.perf_counter()
        text = console.handle(f"{command} " + "neural network dynamics " * 250)
        assert time.perf_counter() - t0 < 0.05
        assert "queries are at most 200 characters" in text


def test_chairs_are_named_by_author_help_and_schedule(schedule, index):
    console = console_at(schedule, index, pst(5))
    assert console.handle("/author Oriol Vinyals").startswith("Oriol Vinyals — chair of Orals & Spotlights Track 28: Deep Learning")
    assert "Orals & Spotlights Track 28: Deep Learning — chairs: Oriol Vinyals, Guido Montufar" in console.handle("/help")
    assert "chairs: Oriol Vinyals, Guido Montufar" in console.handle("/schedule")
    assert "chairs: Oriol Vinyals, Guido Montufar" in console_at(schedule, index, pst(6, 5)).handle("/now")


def test_small_wrong_answers(schedule, index):
    console = console_at(schedule, index, pst(5))
    assert console.handle("/talk **bold**").startswith("No talk matches “**bold**”")
    lines = console.handle("/author a").splitlines()
    assert lines[0].startswith("No author matches “a”")
    assert all(any(word.lower().startswith("a") for word in line.strip("- ").split()) for line in lines[1:])
    assert "title" not in console.handle("/author")


def test_remind_in_the_console_prints_the_dm_when_due(schedule, index, tmp_path):
    from bot.config import Settings
    from bot.console.app import ReminderTicker
    from bot.state.store import Store

    store = Store(tmp_path / "bot.sqlite3")
    clock = FixedClock(pst(5, 30))
    console = Console(schedule, index, clock, PST, files=tmp_path, store=store)
    assert "05:50 PST, 10 min before" in console.handle("/remind talk shooting formulation 10")
    assert "Compositional Explanations" in console.handle("/remind author Jesse Mu")
    listed = console.handle("/remind list")
    assert listed.index("A shooting formulation") < listed.index("Compositional Explanations")
    assert "sooner than" in console.handle("/remind talk shooting formulation 120")  # 05:30 is past 06:00 - 120 min
    ticker = ReminderTicker(schedule, clock, Settings(reminder_kinds=frozenset()), PST, io.StringIO(), index=index, store=store)
    assert ticker.tick() == []
    clock.advance(minutes=20)  # 05:50
    assert ticker.tick() == ["✉ DM: Oral starts in 10 minutes (06:00 PST): A shooting formulation of deep learning"]
    assert ticker.tick() == []
    assert console.handle("/remind cancel all") == "Cancelled."
    clock.advance(minutes=35)  # 06:25: compositional's reminder was due, but it was cancelled
    assert ticker.tick() == []
    store.close()


def test_ask_questions_and_vote_in_the_console(schedule, index, tmp_path):
    from bot.state.store import Store

    store = Store(tmp_path / "bot.sqlite3")
    clock = FixedClock(pst(7, 12))
    console = Console(schedule, index, clock, PST, files=tmp_path, store=store)
    assert console.handle("/ask  Why   do\nensembles scale? ").startswith("❓ Question #1 for “On Power Laws in Deep Ensembles” is in.")
    assert "Question #2 for “Simplifying Hamiltonian" in console.handle("/ask hamiltonian :: Which constraints?")
    assert console.handle("/vote 2") == "▲ Voted for #2 (1 vote)."
    assert console.handle("/questions hamiltonian").splitlines() == [
        "Top questions for “Simplifying Hamiltonian and Lagrangian Neural Networks via Explicit Constraints”:",
        "  #2  ▲1 ✓  Which constraints? (yours)",
    ]
    assert console.handle("/vote #2") == "Vote taken back from #2 (0 votes)."
    assert console.handle("/vote 99") == "No question #99: /questions lists them with their ids."
    assert console.handle("/vote two") == "Use /vote ID, with an id from /questions."
    clock.advance(minutes=30)  # 07:42, the joint Q&A for the four spotlights before it
    console.handle("/vote 1")
    assert console.handle("/questions").splitlines() == [
        "Top questions for “Joint Q&A for Preceeding Spotlights” and the talks it follows:",
        "  #1  ▲1 ✓  Why do ensembles scale? (yours) [On Power Laws in Deep Ensembles]",
        "  #2  ▲0  Which constraints? (yours) [Simplifying Hamiltonian and Lagrangian Neural Networks via Explicit Constraints]",
    ]
    store.close()


def test_console_questions_refusals_are_kind(schedule, index, tmp_path):
    from bot.state.store import Store

    store = Store(tmp_path / "bot.sqlite3")
    console = Console(schedule, index, FixedClock(pst(6, 50)), PST, files=tmp_path, store=store)
    assert console.handle("/ask anyone?") == "No talk is on right now; pick one with /ask QUERY :: QUESTION."
    assert console.handle("/questions") == "No talk is on right now; pick one with /questions QUERY."
    assert console.handle("/questions shooting") == "No open questions for “A shooting formulation of deep learning” yet. Ask one with /ask."
    assert "empty" in console.handle("/ask shooting ::   ")
    assert "at most 500" in console.handle("/ask shooting :: " + "x" * 501)
    for n in range(3):
        console.handle(f"/ask shooting :: q{n}")
    assert "please wait" in console.handle("/ask shooting :: q3")
    assert "not available" in console_at(schedule, index, pst(7)).handle("/ask hello")
    store.close()
