"""Our YAML is read quickly, without lines, and read again carefully only when there is something to report.

The quick read must change nothing a user sees: the same schedule from a good file, and for a bad one
the same refusal, naming the same lines, as the careful read that records the line of every field.
"""

from __future__ import annotations

import pytest

from bench.generate import generate_schedule
from bot.core.schedule import ScheduleError
from bot.sources import let_go, parse_bytes, yaml_source
from bot.sources.build import build
from tests.conftest import TRACK28
from tests.test_schedule import VALID


def careful(data: bytes):
    """What the loader gave before the quick read: every field read with its line."""
    try:
        draft = yaml_source.read(data, "s.yaml")
        built = build(draft)
        let_go(draft)
        return built
    except ScheduleError as err:
        return err.problems


def loaded(data: bytes):
    try:
        return parse_bytes(data, "s.yaml")
    except ScheduleError as err:
        return err.problems


VALUES = ["", "~", "x", '"x"', "'x'", "[x]", "[]", "{a: 1}", "{}", "12", "1.5", "true", "null", "2020-12-10", "!!str 5", "! x", "&a x", "*a", "<<: {}"]


def mutations(text: str):
    """Each line changed in the ways files go wrong: gone, twice, its value replaced, its key renamed."""
    lines = text.splitlines()
    for n, line in enumerate(lines):
        yield "\n".join(lines[:n] + lines[n + 1 :])
        yield "\n".join([*lines[: n + 1], line, *lines[n + 1 :]])
        if ":" in line:
            key, _, _ = line.partition(":")
            for value in VALUES:
                yield "\n".join([*lines[:n], f"{key}: {value}", *lines[n + 1 :]])
            yield "\n".join([*lines[:n], line.replace(key.strip(" -"), key.strip(" -") + "x", 1), *lines[n + 1 :]])
        yield "\n".join([*lines[:n], "\t" + line, *lines[n + 1 :]])


def test_every_mutation_of_a_file_loads_or_is_refused_as_the_careful_read_does():
    texts = list(mutations(VALID))
    assert len(texts) > 300
    refused = 0
    for text in texts:
        data = text.encode()
        expected = careful(data)
        assert loaded(data) == expected, text
        refused += isinstance(expected, list) and bool(expected) and not isinstance(expected, tuple)
    assert refused > 100  # most mutations are refused, each with its line


@pytest.mark.parametrize(
    "text",
    [
        VALID,
        VALID.replace("title: First talk", "title: First talk\n        url: https://x.org/a"),
        "allow_overlaps: true\n" + VALID.replace("06:15:00-08:00\n        title: Second", "06:10:00-08:00\n        title: Second"),
        VALID.replace("id: second", "id: second\n        follows: [first]"),
        "# a comment\n---\n" + VALID + "...\n",
        VALID.replace("name: Session One", "name: &n Session One\n    room: *n"),
        VALID.replace("conference: Test Conf", "conference: Test Conf\n\xff"),
        "# caf\xe9 \xff, in a comment\n" + VALID,
        VALID.replace("title: First talk", "title: Fírst\\u00e9 talk"),
        VALID + "---\nconference: again\n",
        '{"sessions": [], "conference": "x"}',
        "",
        "- a\n- b\n",
    ],
)
def test_odd_files_load_or_are_refused_as_before(text: str):
    data = text.encode("utf-8", "surrogateescape") if "\xff" not in text else text.encode("latin-1")
    assert loaded(data) == careful(data)


def test_plain_data_is_what_the_careful_reader_builds():
    for data in (TRACK28.read_bytes(), generate_schedule(60, seed=2).encode(), VALID.encode()):
        assert yaml_source._load_plain(data) == yaml_source._load_yaml(data)


def test_the_quick_read_builds_the_same_schedule_as_the_careful_one():
    for data in (TRACK28.read_bytes(), generate_schedule(300, seed=5).encode()):
        assert yaml_source.read_quick(data, "s.yaml") is not None
        assert loaded(data) == careful(data)


@pytest.mark.parametrize(
    "text",
    [
        VALID.replace("title: First talk", "title: !!python/object:os.system x"),
        VALID.replace("conference: Test Conf", "conference: &c Test Conf").replace("name: Session One", "name: *c"),
        VALID.replace("kind: oral", "<<: {kind: oral}"),
        VALID.replace("abstract: About engines.", "abstract: " + "x" * (yaml_source.MAX_TEXT_CHARS + 1)),
        VALID.replace("abstract: About engines.", "abstract: " + "[" * 100 + "]" * 100),
        VALID.replace("kind: oral", "? [a]\n        : b\n        kind: oral"),
    ],
)
def test_the_quick_reader_leaves_the_unusual_to_the_careful_one(text: str):
    with pytest.raises(yaml_source._NotPlain):
        yaml_source._load_plain(text.encode())
    assert loaded(text.encode()) == careful(text.encode())


def test_an_error_deep_in_a_big_file_names_its_line():
    text = generate_schedule(2_000, seed=1)
    lines = text.splitlines()
    where = next(n for n, line in enumerate(lines) if n > len(lines) * 3 // 4 and line.strip().startswith("end:"))
    lines[where] = lines[where].replace("end:", "end: 25:00 #", 1)
    with pytest.raises(ScheduleError) as info:
        parse_bytes("\n".join(lines).encode(), "big.yaml")
    (problem,) = info.value.problems
    assert problem.line == where + 1
    assert problem.field.endswith(".end")
    assert str(info.value).splitlines()[1].startswith(f"  big.yaml:{where + 1}: field 'sessions[")
