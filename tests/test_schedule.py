"""The data matches the programme page, and every kind of malformed file is refused by file, line and field."""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from bench.generate import generate_schedule
from bot.core.schedule import BUILD_SWITCH_INTERVAL, GIVE_WAY_SECONDS, Kind, Schedule, ScheduleError, Session, Talk, gc_paused, give_way
from bot.sources import load_schedule, parse_schedule
from bot.sources.yaml_source import MAX_TEXT_CHARS, MAX_VALUES
from tests.conftest import ROOT

SEED = ROOT.parent / "shared" / "seed" / "neurips2020-track28-session.txt"

VALID = """\
conference: Test Conf
sessions:
  - id: s1
    name: Session One
    date: 2020-12-10
    timezone: America/Los_Angeles
    items:
      - id: first
        kind: oral
        start: 2020-12-10T06:00:00-08:00
        end: 2020-12-10T06:15:00-08:00
        title: First talk
        authors: [Ada Lovelace]
        abstract: About engines.
      - id: second
        kind: spotlight
        start: 2020-12-10T06:15:00-08:00
        end: 2020-12-10T06:25:00-08:00
        title: Second talk
"""


def refuse(text: str) -> ScheduleError:
    with pytest.raises(ScheduleError) as info:
        parse_schedule(text, "test.yaml")
    return info.value


def only_problem(text: str):
    err = refuse(text)
    assert err.problems, err
    return err.problems[0]


# ------------------------------------------------------------------ the real data


def test_track28_has_every_item_of_the_page(schedule):
    kinds = [t.kind for t in schedule.talks]
    assert kinds.count(Kind.ORAL) == 3
    assert kinds.count(Kind.SPOTLIGHT) == 8
    assert kinds.count(Kind.QA) == 2
    assert kinds.count(Kind.BREAK) == 2
    session = schedule.sessions[0]
    assert session.name == "Orals & Spotlights Track 28: Deep Learning"
    assert session.chairs == ("Oriol Vinyals", "Guido Montufar")
    assert session.date == dt.date(2020, 12, 10)
    assert session.timezone.key == "America/Los_Angeles"


def test_track28_starts_at_six_am_pacific_not_six_pm(schedule):
    first = schedule.talks[0]
    assert first.start.astimezone(dt.UTC) == dt.datetime(2020, 12, 10, 14, 0, tzinfo=dt.UTC)
    assert schedule.talks[-1].end.astimezone(dt.UTC) == dt.datetime(2020, 12, 10, 17, 0, tzinfo=dt.UTC)


@pytest.mark.skipif(not SEED.exists(), reason="programme page not beside the repo")
def test_track28_matches_the_programme_page_item_by_item(schedule):
    page = SEED.read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=Thu 10 Dec\. )", page)[1:]
    assert len(blocks) == len(schedule.talks)
    for block, talk in zip(blocks, schedule.talks, strict=True):
        paras = [p.strip() for p in block.strip().split("\n\n")]
        h1, m1, h2, m2 = map(int, re.match(r"Thu 10 Dec\. (\d+):(\d+) - (\d+):(\d+) PST", paras[0]).groups())
        local = talk.start.astimezone(talk.start.tzinfo)
        assert (local.hour, local.minute) == (h1, m1)
        assert (talk.end.hour, talk.end.minute) == (h2, m2)
        kind_label, title = paras[1].split("\n", 1)
        assert talk.kind.label == kind_label.strip()
        assert talk.title == title.strip()
        if len(paras) > 2:
            assert list(talk.authors) == [a.strip() for a in paras[2].split(" · ")]
            assert talk.abstract == paras[3]


def test_accents_and_latex_are_kept_in_the_data(schedule):
    authors = {a for t in schedule.talks for a in t.authors}
    assert {"Ivan Dokmanić", "André Martins", "António Farinhas"} <= authors
    l2 = schedule.talk("l2-regularization-dynamics")
    assert "$L_2$" in l2.title
    assert l2.display_title == "On the training dynamics of deep networks with L₂ regularization"


def test_qa_records_the_spotlights_it_follows(schedule):
    qa1, qa2 = (t for t in schedule.talks if t.kind is Kind.QA)
    assert [schedule.talk(i).kind for i in qa1.follows] == [Kind.SPOTLIGHT] * 4
    assert qa2.follows == (
        "sparse-continuous-attention",
        "temporal-spike-sequence-learning",
        "directional-convergence",
        "neural-cde-irregular-time-series",
    )


def test_ids_are_unique_slugs(schedule):
    ids = [t.id for t in schedule.talks]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.-]*", i) for i in ids)


def test_valid_minimal_file_loads():
    loaded = parse_schedule(VALID, "test.yaml")
    assert [t.id for t in loaded.talks] == ["first", "second"]
    assert loaded.talks[0].start.tzinfo is not None


# ------------------------------------------------------------------ refusals


def test_yaml_syntax_error_names_line_and_field():
    bad = VALID.replace("title: First talk", 'title: "First talk')
    problem = only_problem(bad)
    assert (problem.line, problem.field) == (12, "title")
    assert "YAML syntax error" in problem.message


def test_empty_file():
    problem = only_problem("")
    assert problem.line == 1
    assert "empty" in problem.message


def test_comment_only_file_counts_as_empty():
    assert "empty" in only_problem("# nothing here\n").message


def test_top_level_of_wrong_type():
    problem = only_problem("- just\n- a list\n")
    assert problem.field == "(top level)"
    assert "mapping" in problem.message


def test_missing_field_names_the_field_and_the_item_line():
    bad = VALID.replace("        title: Second talk\n", "")
    problem = only_problem(bad)
    assert problem.field == "sessions[0].items[1].title"
    assert problem.line == 15
    assert "missing" in problem.message


def test_unknown_field_suggests_the_right_one():
    bad = VALID.replace("        title: Second talk", "        titel: Second talk")
    err = refuse(bad)
    unknown = next(p for p in err.problems if "unknown field" in p.message)
    assert unknown.field == "sessions[0].items[1].titel"
    assert unknown.line == 19
    assert "did you mean 'title'" in unknown.message


def test_unparseable_time():
    problem = only_problem(VALID.replace("end: 2020-12-10T06:25:00-08:00", "end: half past six"))
    assert (problem.line, problem.field) == (18, "sessions[0].items[1].end")
    assert "cannot read" in problem.message


def test_naive_time_is_refused():
    problem = only_problem(VALID.replace("start: 2020-12-10T06:00:00-08:00", "start: 2020-12-10T06:00:00"))
    assert (problem.line, problem.field) == (10, "sessions[0].items[0].start")
    assert "no UTC offset" in problem.message


def test_offset_that_contradicts_the_zone_is_refused():
    problem = only_problem(VALID.replace("start: 2020-12-10T06:00:00-08:00", "start: 2020-12-10T07:00:00-07:00"))
    assert problem.field == "sessions[0].items[0].start"
    assert "does not match America/Los_Angeles" in problem.message


def test_end_before_start():
    problem = only_problem(VALID.replace("end: 2020-12-10T06:25:00-08:00", "end: 2020-12-10T06:10:00-08:00"))
    assert (problem.line, problem.field) == (18, "sessions[0].items[1].end")
    assert "not after start" in problem.message


def test_end_equal_to_start():
    problem = only_problem(VALID.replace("end: 2020-12-10T06:25:00-08:00", "end: 2020-12-10T06:15:00-08:00"))
    assert "not after start" in problem.message


def test_overlapping_items_in_one_room():
    problem = only_problem(VALID.replace("start: 2020-12-10T06:15:00-08:00", "start: 2020-12-10T06:10:00-08:00"))
    assert problem.field == "sessions[0].items[1].start"
    assert problem.line == 15
    assert "before 'first' ends" in problem.message


def test_sessions_in_different_rooms_may_overlap_but_not_in_the_same_room():
    second = VALID.split("sessions:\n", 1)[1].replace("id: s1", "id: s2").replace("id: first", "id: third").replace("id: second", "id: fourth")
    two_rooms = VALID.replace("    timezone:", "    room: A\n    timezone:", 1) + second.replace("    timezone:", "    room: B\n    timezone:", 1)
    assert len(parse_schedule(two_rooms).sessions) == 2
    same_room = VALID.replace("    timezone:", "    room: A\n    timezone:", 1) + second.replace("    timezone:", "    room: A\n    timezone:", 1)
    assert "in A" in refuse(same_room).problems[0].message


def test_the_first_item_must_start_on_the_session_date():
    problem = only_problem(VALID.replace("date: 2020-12-10", "date: 2020-12-11"))
    assert (problem.line, problem.field) == (10, "sessions[0].items[0].start")
    assert "starts on 2020-12-10 in America/Los_Angeles, but the session's date (line 5) is 2020-12-11" in problem.message


def test_an_item_dated_a_day_late_is_refused():
    late = VALID.replace("2020-12-10T06:15:00-08:00\n        end: 2020-12-10T06:25", "2020-12-11T06:15:00-08:00\n        end: 2020-12-11T06:25")
    problem = only_problem(late)
    assert (problem.line, problem.field) == (17, "sessions[0].items[1].start")
    assert "a day or more after the session's first item (2020-12-10 06:00)" in problem.message


def test_a_session_may_run_past_midnight():
    overnight = (
        VALID.replace("2020-12-10T06:00:00", "2020-12-10T23:40:00")
        .replace("end: 2020-12-10T06:15:00", "end: 2020-12-10T23:55:00")
        .replace("start: 2020-12-10T06:15:00", "start: 2020-12-11T00:05:00")
        .replace("2020-12-10T06:25:00", "2020-12-11T00:15:00")
    )
    session = parse_schedule(overnight, "test.yaml").sessions[0]
    assert session.date == dt.date(2020, 12, 10)
    assert session.items[-1].start.date() == dt.date(2020, 12, 11)


def test_duplicate_ids():
    problem = only_problem(VALID.replace("id: second", "id: first"))
    assert problem.field == "sessions[0].items[1].id"
    assert problem.line == 15
    assert "duplicate id 'first'" in problem.message


def test_duplicate_key_in_one_item():
    problem = only_problem(VALID.replace("        title: Second talk\n", "        title: Second talk\n        title: Again\n"))
    assert (problem.line, problem.field) == (20, "title")
    assert "twice" in problem.message


def test_unknown_kind():
    problem = only_problem(VALID.replace("kind: spotlight", "kind: keynoot"))
    assert (problem.line, problem.field) == (16, "sessions[0].items[1].kind")
    assert "unknown kind 'keynoot'" in problem.message


def test_unknown_time_zone():
    problem = only_problem(VALID.replace("America/Los_Angeles", "Pacific/Nowhere"))
    assert (problem.line, problem.field) == (6, "sessions[0].timezone")
    assert "unknown time zone" in problem.message


def test_empty_title():
    problem = only_problem(VALID.replace("title: Second talk", 'title: "  "'))
    assert (problem.line, problem.field) == (19, "sessions[0].items[1].title")
    assert "empty" in problem.message


def test_wrong_type_for_a_list():
    problem = only_problem(VALID.replace("authors: [Ada Lovelace]", "authors: 12"))
    assert problem.field == "sessions[0].items[0].authors"
    assert "list" in problem.message


def test_follows_must_name_existing_items():
    bad = VALID + "        follows: [nowhere]\n"
    problem = only_problem(bad)
    assert problem.field == "sessions[0].items[1].follows"
    assert "unknown item id 'nowhere'" in problem.message


def test_all_problems_are_reported_at_once():
    bad = VALID.replace("kind: spotlight", "kind: keynoot").replace("title: First talk", 'title: ""')
    assert len(refuse(bad).problems) == 2


def test_missing_file_is_refused_like_a_bad_one(tmp_path: Path):
    with pytest.raises(ScheduleError, match="file not found"):
        load_schedule(tmp_path / "missing.yaml")


def test_yaml_tags_that_run_code_are_refused():
    problem = only_problem("!!python/object/apply:os.system ['true']\n")
    assert "!!python/object/apply:os.system is not used in schedules" in problem.message
    assert "could not determine" in only_problem("!!python/name:os.system ''\n").message


# ------------------------------------------------------------------ hostile YAML


def laughs(first: str, level: str = "[{}]") -> str:
    """The billion laughs: eight levels, each nine aliases of the level before (`level` wraps them)."""
    names = "abcdefghi"
    lines = [f"a: &a {first}"]
    lines += [f"{name}: &{name} " + level.format(", ".join(["*" + prev] * 9)) for prev, name in itertools.pairwise(names)]
    return "\n".join(lines) + "\n"


KEY_BOMB = laughs('["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]') + "? *i\n: x\n"

CHILD = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from bot.core.schedule import ScheduleError
from bot.sources import load_schedule
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    load_schedule(sys.argv[1])
except ScheduleError as err:
    print(err)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
print(f"seconds={time.perf_counter() - start:.3f} grown_mb={grown}")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS caps memory on Linux")
def test_a_billion_laughs_key_is_refused_at_once_in_little_memory(tmp_path: Path):
    """Issue 10, item 10: this file once took 3 GB (the key was turned into text); now 1 GB is ample."""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(KEY_BOMB, encoding="utf-8")
    assert len(KEY_BOMB) < 460
    done = subprocess.run([sys.executable, "-c", CHILD, str(bomb)], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{bomb}:8: field 'h': the file expands to more than {MAX_VALUES:,} values" in done.stdout
    figures = dict(part.split("=") for part in done.stdout.split()[-2:])
    assert float(figures["seconds"]) < 1.0
    assert int(figures["grown_mb"]) < 50  # the peak grew this little while loading (imports excluded); it once grew by 3 GB


@pytest.mark.parametrize(
    ("first", "level"),
    [
        ('["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]', "[{}]"),
        ("[0, 0, 0, 0, 0, 0, 0, 0, 0]", "[{}]"),
        ("{k: lol}", "{{<<: [{}]}}"),  # merge keys: mappings merged nine at a time
    ],
)
def test_the_classic_billion_laughs_in_values_is_refused_quickly(first: str, level: str):
    started = time.perf_counter()
    problem = only_problem(laughs(first, level))
    assert time.perf_counter() - started < 0.5
    assert problem.line == 8
    assert problem.field in ("h", "<<")
    assert f"expands to more than {MAX_VALUES:,} values, counting each use of an alias (*name)" in problem.message


def test_an_alias_used_as_a_key_is_refused():
    problem = only_problem("a: &a [x, y]\n? *a\n: 1\n")
    assert (problem.line, problem.field) == (3, "(key)")
    assert "not an alias" in problem.message
    problem = only_problem(
        VALID.replace("title: First talk", "title: &t First talk").replace("        abstract: About engines.", "        *t : About engines.")
    )
    assert (problem.line, problem.field) == (14, "(key)")
    assert "not an alias" in problem.message


def test_an_alias_inside_what_it_names_is_refused():
    problem = only_problem("a: &a [1, *a]\n")
    assert (problem.line, problem.field) == (1, "a")
    assert "inside what it names" in problem.message


def test_a_text_longer_than_the_cap_is_refused_with_its_place():
    long = "x" * (MAX_TEXT_CHARS + 1)
    problem = only_problem(VALID.replace("abstract: About engines.", f"abstract: {long}"))
    assert (problem.line, problem.field) == (14, "abstract")
    assert f"longer than the {MAX_TEXT_CHARS:,} allowed" in problem.message
    assert parse_schedule(VALID.replace("abstract: About engines.", f"abstract: {long[:-1]}"), "test.yaml")


def test_a_long_text_repeated_through_aliases_is_refused():
    """Few values, but each use brings 90,000 characters: 1,200 uses would be 108 MB of abstracts."""
    text = VALID.replace("abstract: About engines.", "abstract: &long " + "x" * 90_000) + "        abstract: *long\n"
    assert parse_schedule(text, "test.yaml").talks[1].abstract == "x" * 90_000
    problem = only_problem(text + "conference_notes: [" + ", ".join(["*long"] * 1_200) + "]\n")
    assert (problem.line, problem.field) == (21, "conference_notes")
    assert "aliases (*name) repeat more than" in problem.message


def test_ordinary_aliases_and_merge_keys_still_load():
    text = """\
sessions:
  - id: s1
    name: One
    <<: &pst {timezone: America/Los_Angeles, date: 2020-12-10}
    room: A
    items:
      - {id: a, kind: oral, start: 2020-12-10T06:00:00-08:00, end: 2020-12-10T06:15:00-08:00, title: A, authors: &ada [Ada Lovelace]}
  - id: s2
    name: Two
    <<: *pst
    date: 2020-12-11
    room: A
    items:
      - {id: b, kind: oral, start: 2020-12-11T06:00:00-08:00, end: 2020-12-11T06:15:00-08:00, title: B, authors: *ada}
"""
    loaded = parse_schedule(text, "test.yaml")
    assert [s.date for s in loaded.sessions] == [dt.date(2020, 12, 10), dt.date(2020, 12, 11)]  # written out beats merged
    assert loaded.sessions[1].timezone.key == "America/Los_Angeles"
    assert loaded.talk("b").authors == ("Ada Lovelace",)


def test_a_100000_talk_conference_fits_well_under_the_value_cap():
    """The cap is about four times what the 100,000-talk benchmark needs (2.56 million values)."""
    node = yaml.compose(generate_schedule(1_000, seed=1), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    values, stack = 0, [node]
    while stack:
        current = stack.pop()
        values += 1
        if isinstance(current, yaml.MappingNode):
            stack.extend(n for pair in current.value for n in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    assert values * 100 * 3 < MAX_VALUES


# ------------------------------------------------------------------ the command line


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", "check", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)


def test_check_prints_a_summary_per_session():
    done = run_check(ROOT / "data" / "track28.yaml")
    assert done.returncode == 0, done.stderr
    assert "track28: Orals & Spotlights Track 28: Deep Learning" in done.stdout
    assert "3 orals" in done.stdout
    assert "8 spotlights" in done.stdout


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("kind: spotlight", "kind: keynoot"), "kind"),
        (("end: 2020-12-10T06:25:00-08:00", "end: 2020-12-10T06:05:00-08:00"), "end"),
        (("title: First talk", 'title: "First talk'), "title"),
    ],
)
def test_check_refuses_bad_files_with_exit_2_and_no_traceback(tmp_path: Path, change, field):
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace(*change), encoding="utf-8")
    done = run_check(bad)
    assert done.returncode == 2
    assert f"{bad}:" in done.stderr
    assert field in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_impossible_date_and_hour_are_reported_not_raised():
    assert only_problem(VALID.replace("date: 2020-12-10", "date: 2020-13-45")).field == "sessions[0].date"
    problem = only_problem(VALID.replace("start: 2020-12-10T06:00:00-08:00", "start: 2020-12-10T25:00:00-08:00"))
    assert (problem.line, problem.field) == (10, "sessions[0].items[0].start")


def test_a_tab_in_the_indentation_names_its_line():
    problem = only_problem(VALID.replace("        kind: oral", "\tkind: oral"))
    assert (problem.line, problem.field) == (9, "kind")


# ------------------------------------------------------------------ building off the event loop


def _item(talk_id: str, start: dt.datetime) -> Talk:
    return Talk(talk_id, "s", Kind.TALK, start, start + dt.timedelta(minutes=10), talk_id)


@pytest.mark.parametrize("turned_back", [False, True])
def test_items_are_ordered_by_start_then_id_whatever_their_zones(turned_back: bool):
    """Timestamps sort first, the real comparison checks: the order of sorting on (start, id), even where
    a clock turned back makes that order differ from the order of instants."""
    berlin, la = ZoneInfo("Europe/Berlin"), ZoneInfo("America/Los_Angeles")
    base = dt.datetime(2024, 10, 26, 1, 30, tzinfo=dt.UTC)
    zones = [berlin, la, dt.timezone(dt.timedelta(hours=5)), dt.timezone(dt.timedelta(hours=5))]  # two equal, not one
    starts = [(base + dt.timedelta(minutes=m)).astimezone(zones[i % 4]) for i, m in enumerate((0, 30, 60, 90, 0, 60, 30, 0))]
    if turned_back:  # Berlin, 27 October 2024: 02:30 twice, the first (fold=0) an hour before the second
        starts += [dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=berlin), dt.datetime(2024, 10, 27, 2, 30, tzinfo=berlin)]
        starts += [dt.datetime(2024, 10, 27, 1, 0, tzinfo=dt.UTC)]  # between them: no order of instants agrees
    items = [_item(f"t{n:02d}", s) for n, s in enumerate(starts)][::-1]
    session = Session("s", "S", berlin, dt.date(2024, 10, 27), tuple(items))
    assert Schedule((session,)).talks == tuple(sorted(items, key=lambda t: (t.start, t.id)))


def test_gc_and_switch_interval_come_back_after_nested_and_parallel_builds():
    """Both are the whole process's: the last build out restores what the first one in found."""
    interval, enabled = sys.getswitchinterval(), gc.isenabled()
    inside: list[tuple[bool, float]] = []
    release = threading.Event()

    def build() -> None:
        with gc_paused():
            release.wait(5)
            inside.append((gc.isenabled(), sys.getswitchinterval()))

    try:
        gc.enable()
        with gc_paused():
            other = threading.Thread(target=build)
            other.start()
            with gc_paused():
                assert not gc.isenabled() and sys.getswitchinterval() == pytest.approx(BUILD_SWITCH_INTERVAL)
        release.set()  # the other build is still running after this thread's builds end
        other.join()
        assert inside == [(False, pytest.approx(BUILD_SWITCH_INTERVAL))]
        assert gc.isenabled() and sys.getswitchinterval() == pytest.approx(interval)
        gc.disable()
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        sys.setswitchinterval(interval)
        (gc.enable if enabled else gc.disable)()


def test_a_build_in_a_worker_gives_way_only_while_the_main_thread_works():
    """give_way sleeps when the main thread (the event loop) is running, not when it waits or blocks."""

    def hundred_steps() -> float:
        began = time.perf_counter()
        for _ in range(100):
            give_way()
            time.sleep(0.0002)  # a step of work, longer than the gap between two looks at the main thread
        return time.perf_counter() - began

    took: list[float] = []
    worker = threading.Thread(target=lambda: took.append(hundred_steps()))
    worker.start()
    worker.join()  # the main thread blocked in one place: never busy
    running = threading.Event()

    def while_main_works() -> None:
        running.wait(5)
        took.append(hundred_steps())
        running.clear()

    worker = threading.Thread(target=while_main_works)
    worker.start()
    running.set()
    while running.is_set():  # busy in Python: the worker's steps give way
        sum(range(100))
    worker.join()
    blocked, busy = took
    half_of_all_the_waits = 100 * GIVE_WAY_SECONDS / 2
    assert blocked + half_of_all_the_waits < busy
    assert hundred_steps() < blocked + half_of_all_the_waits  # the main thread itself never waits
