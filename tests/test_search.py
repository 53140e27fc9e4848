"""Search quality: what an attendee types must find the right talk or author first."""

from __future__ import annotations

import datetime as dt
import functools
import json
import time

import numpy as np
import pytest

from bench.generate import generate_schedule
from bot.core.answers import QUERY_MAX, find_author, find_talk, suggest_authors, suggest_talks
from bot.core.errors import AmbiguousQuery, AuthorNotFound, EmptyQuery, QueryTooLong, TalkNotFound
from bot.core.schedule import Schedule
from bot.core.search import ABSTRACT, AUTHOR, TITLE, SearchIndex, TokenIndex
from bot.core.text import fold, plain_text, words
from bot.sources import parse_schedule
from tests.conftest import pst

TALK_QUERIES = [
    # title words
    ("compositional", "compositional-explanations"),
    ("shooting formulation", "shooting-formulation"),
    ("power laws ensembles", "power-laws-deep-ensembles"),
    ("Wave-Based Imaging", "wave-based-imaging"),
    ("sparse continuous attention", "sparse-continuous-attention"),
    ("spiking neural networks", "temporal-spike-sequence-learning"),
    ("directional convergence", "directional-convergence"),
    ("controlled differential equations", "neural-cde-irregular-time-series"),
    ("irregular time series", "neural-cde-irregular-time-series"),
    # LaTeX, case, punctuation
    ("l2 regularization", "l2-regularization-dynamics"),
    ("L2", "l2-regularization-dynamics"),
    ("EARLY-TIME learning dynamics!", "early-time-learning-dynamics"),
    # typos
    ("hamiltonain", "hamiltonian-lagrangian-constraints"),
    ("compositonal", "compositional-explanations"),
    ("lagrangain neural netwroks", "hamiltonian-lagrangian-constraints"),
    ("ensembels", "power-laws-deep-ensembles"),
    # abstract concepts
    ("neural tangent kernel", "early-time-learning-dynamics"),
    ("Lagrange multipliers", "hamiltonian-lagrangian-constraints"),
    ("Fourier integral operators", "wave-based-imaging"),
    ("Tsallis statistics", "sparse-continuous-attention"),
    ("particle ensemble", "shooting-formulation"),
    ("continuous depth", "shooting-formulation"),
    ("memory split", "power-laws-deep-ensembles"),
    ("optimal transport", "wave-based-imaging"),
    ("natural language inference", "compositional-explanations"),
    ("adversarial examples copy paste", "compositional-explanations"),
    ("Kurdyka Lojasiewicz", "directional-convergence"),
    # authors, with and without accents
    ("dokmanic", "wave-based-imaging"),
    ("Dokmanić", "wave-based-imaging"),
    ("telgarsky", "directional-convergence"),
    ("Kidger", "neural-cde-irregular-time-series"),
    ("lewkowitz", "l2-regularization-dynamics"),
    ("francois vialard", "shooting-formulation"),
]


@pytest.mark.parametrize(("query", "expected"), TALK_QUERIES)
def test_natural_queries_find_the_right_talk_first(index, query, expected):
    matches = index.find_talks(query, limit=5)
    assert matches, f"nothing for {query!r}"
    assert matches[0].talk.id == expected, [(m.talk.id, m.score) for m in matches]


@pytest.mark.parametrize(("query", "expected"), TALK_QUERIES)
def test_full_lookup_resolves_or_lists_the_right_talk_first(index, query, expected):
    try:
        assert find_talk(index, query).id == expected
    except AmbiguousQuery as err:
        assert err.suggestions[0].endswith(index.schedule.talk(expected).display_title)


def test_title_matches_outrank_abstract_matches(index):
    # "attention" is in one title and in no other item's text as prominently
    matches = index.find_talks("dynamics")
    title_hits = {"l2-regularization-dynamics", "early-time-learning-dynamics"}
    assert {m.talk.id for m in matches[:2]} == title_hits
    assert all(m.score > matches[2].score for m in matches[:2])


def test_matches_come_with_scores_best_first(index):
    matches = index.find_talks("neural networks")
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert all(0 < s <= 100 for s in scores)


def test_an_unclear_winner_is_reported_with_candidates(index):
    with pytest.raises(AmbiguousQuery) as info:
        find_talk(index, "deep learning")
    assert "06:00 Oral · A shooting formulation of deep learning" in info.value.suggestions
    assert "08:10 Spotlight · Directional convergence and alignment in deep learning" in info.value.suggestions


def test_nonsense_is_not_found_kindly(index):
    with pytest.raises(TalkNotFound) as info:
        find_talk(index, "xqzzv blorp")
    assert "xqzzv blorp" in str(info.value)


def test_empty_query_asks_for_words(index):
    with pytest.raises(EmptyQuery):
        find_talk(index, "   ")


def test_exact_id_resolves_exactly(index):
    assert find_talk(index, "break-2").title == "Break"


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("Matus Telgarsky", "Matus Telgarsky"),
        ("telgarksy", "Matus Telgarsky"),
        ("Telgarsky", "Matus Telgarsky"),
        ("dokmanic", "Ivan Dokmanić"),
        ("Ivan Dokmanić", "Ivan Dokmanić"),
        ("andre martins", "André Martins"),
        ("Antonio Farinhas", "António Farinhas"),
        ("pennigton", "Jeffrey Pennington"),
        ("Gur-Ari", "Guy Gur-Ari"),
        ("Niethammer", "Marc Niethammer"),
        ("lobacheva", "Ekaterina Lobacheva"),
    ],
)
def test_author_lookup(index, query, name):
    author = find_author(index, query)
    assert author.name == name
    assert author.talks


def test_author_returns_their_talks(index):
    author = find_author(index, "Jacob Andreas")
    assert [t.id for t in author.talks] == ["compositional-explanations"]


def test_unknown_author(index):
    with pytest.raises(AuthorNotFound):
        find_author(index, "Zzyzx Qwerty")


def test_autocomplete_empty_input_lists_the_next_talks(index):
    choices = suggest_talks(index, "", pst(7, 12))
    assert choices[0].value == "wave-based-imaging"
    assert all(not c.value.startswith("break") for c in choices)
    assert len(choices) <= 25


def test_autocomplete_keystrokes_find_the_talk_early(index):
    for prefix in ["comp", "compo", "composit", "compositional expl"]:
        assert suggest_talks(index, prefix, pst(5))[0].value == "compositional-explanations", prefix


def test_autocomplete_is_capped_and_short(index):
    choices = suggest_talks(index, "n", pst(5), limit=25)
    assert len(choices) <= 25
    assert all(1 <= len(c.name) <= 100 and len(c.value) <= 100 for c in choices)


def test_author_autocomplete_values_resolve_exactly(index):
    choices = suggest_authors(index, "martin", pst(5))
    assert choices[0].name.startswith("André Martins")
    assert find_author(index, choices[0].value).name == "André Martins"
    assert suggest_authors(index, "", pst(7, 45))[0].name.startswith("André Martins")


def test_folding_ignores_case_accents_and_punctuation():
    assert fold("Dokmanić") == "dokmanic"
    assert fold("Kurdyka-Łojasiewicz") == "kurdyka lojasiewicz"
    assert fold("On $L_2$ regularization") == "on l2 regularization"


def test_latex_renders_readably():
    assert plain_text("with $L_2$ regularization") == "with L₂ regularization"
    assert plain_text("the medium ``bends'' waves") == "the medium “bends” waves"
    assert plain_text(r"of \emph{controlled differential equations}") == "of controlled differential equations"
    assert plain_text("$N$-pendulums") == "N-pendulums"


# --------------------------------------------------------------------------- long queries


@pytest.mark.parametrize("lookup", [find_talk, find_author])
def test_an_overlong_query_is_refused_kindly_and_at_once(index, lookup):
    words = "deep learning neural networks dynamics " * 150  # 6,000 characters
    t0 = time.perf_counter()
    with pytest.raises(QueryTooLong) as info:
        lookup(index, words)
    assert time.perf_counter() - t0 < 0.05
    assert "queries are at most 200 characters" in str(info.value)


def test_a_query_of_the_longest_allowed_length_is_searched(index):
    title = "Simplifying Hamiltonian and Lagrangian Neural Networks via Explicit Constraints"
    query = (title + " ") * (QUERY_MAX // (len(title) + 1))
    assert len(query.strip()) <= QUERY_MAX
    assert find_talk(index, query).id == "hamiltonian-lagrangian-constraints"


def test_autocomplete_reads_only_the_first_200_characters(index):
    t0 = time.perf_counter()
    choices = suggest_talks(index, "Compositional Explanations of Neurons " * 150, pst(5))
    assert time.perf_counter() - t0 < 0.2
    assert choices and choices[0].value == "compositional-explanations"


# --------------------------------------------------------------------------- chairs


def test_a_chair_is_found_as_the_chair_of_their_session(index, schedule):
    (session,) = schedule.sessions
    for query in ["Oriol Vinyals", "vinyals", "oriol vinyals", "Montufar"]:
        person = find_author(index, query)
        assert person.chaired == (session,), query
        assert person.talks == ()
    first = suggest_authors(index, "vinyals", pst(5))[0]
    assert first.name == "Oriol Vinyals · chair of Orals & Spotlights Track 28: Deep Learning"
    assert find_author(index, first.value).name == "Oriol Vinyals"


def test_a_chair_who_also_authors_a_talk_is_both():
    text = """\
sessions:
  - id: s1
    name: Session One
    chairs: [Ada Lovelace, Charles Babbage]
    date: 2020-12-10
    timezone: America/Los_Angeles
    items:
      - id: first
        kind: oral
        start: 2020-12-10T06:00:00-08:00
        end: 2020-12-10T06:15:00-08:00
        title: First talk
        authors: [Ada Lovelace]
"""
    small = parse_schedule(text)
    index = SearchIndex(small)
    ada = find_author(index, "lovelace")
    assert [t.id for t in ada.talks] == ["first"] and [s.id for s in ada.chaired] == ["s1"]
    assert suggest_authors(index, "lovelace", pst(5))[0].name == "Ada Lovelace · 1 talk, chair of Session One"
    assert len(index.authors) == 2


# --------------------------------------------------------------------------- names in every script

WORLD_NAMES = [
    "王小明",  # Chinese
    "王大明",
    "山田太郎",  # Japanese
    "佐藤 花子",
    "Дмитрий Ветров",  # Cyrillic
    "Дмитрий Иванов",
    "Γιάννης Παπαδόπουλος",  # Greek
    "محمد علي",  # Arabic
    "דוד לוי",  # Hebrew
    "Ivan Dokmanić",
]


@functools.cache
def world() -> tuple[Schedule, SearchIndex]:
    start = dt.datetime(2020, 12, 10, 6, tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    items = [
        {
            "id": f"t{i}",
            "kind": "oral",
            "start": (start + dt.timedelta(minutes=10 * i)).isoformat(),
            "end": (start + dt.timedelta(minutes=10 * i + 10)).isoformat(),
            "title": f"Talk number {i}",
            "authors": [name],
        }
        for i, name in enumerate(WORLD_NAMES)
    ]
    doc = {"sessions": [{"id": "w", "name": "World", "timezone": "America/Los_Angeles", "date": "2020-12-10", "items": items}]}
    schedule = parse_schedule(json.dumps(doc), "<world>")  # JSON is YAML
    return schedule, SearchIndex(schedule)


def test_folding_keeps_every_script_and_strips_latin_accents():
    folded = [fold(name) for name in WORLD_NAMES]
    assert all(folded) and len(set(folded)) == len(WORLD_NAMES)
    assert fold("Dokmanić") == fold("dokmanic") == "dokmanic"
    assert fold("Γιάννης") == fold("γιαννης")
    assert fold("山田 太郎") == fold("山田太郎")


def test_authors_in_every_script_stay_distinct():
    _, index = world()
    assert sorted(a.name for a in index.authors) == sorted(WORLD_NAMES)
    assert all(len(a.talks) == 1 for a in index.authors)


@pytest.mark.parametrize("name", WORLD_NAMES)
def test_an_author_in_any_script_is_found_by_their_exact_name(name):
    schedule, index = world()
    assert find_author(index, name).name == name
    first = suggest_authors(index, name, schedule.talks[0].start)[0]
    assert first.name.startswith(name)
    assert find_author(index, first.value).name == name


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("王小", "王小明"),
        ("山田", "山田太郎"),
        ("佐藤花子", "佐藤 花子"),
        ("ветров", "Дмитрий Ветров"),
        ("Иванов", "Дмитрий Иванов"),
        ("παπαδοπουλος", "Γιάννης Παπαδόπουλος"),
        ("علي", "محمد علي"),
        ("לוי", "דוד לוי"),
    ],
)
def test_autocomplete_finds_an_author_in_any_script_as_it_is_typed(typed, name):
    schedule, index = world()
    assert suggest_authors(index, typed, schedule.talks[0].start)[0].name.startswith(name)


# --------------------------------------------------------------------------- small wrong answers


@pytest.mark.parametrize("query", ["**bold**", "the of", "***", "_", "a"])
def test_markdown_punctuation_or_stopwords_find_no_talk(index, query):
    with pytest.raises(TalkNotFound):
        find_talk(index, query)


def test_one_letter_suggests_only_names_with_a_word_starting_with_it(index):
    choices = suggest_authors(index, "a", pst(5))
    assert choices
    for choice in choices:
        name = choice.name.split(" · ")[0]
        assert any(word.startswith("a") for word in fold(name).split()), name
    with pytest.raises(AuthorNotFound) as info:
        find_author(index, "a")
    assert info.value.suggestions
    assert all(any(w.startswith("a") for w in fold(name).split()) for name in info.value.suggestions)


def test_empty_author_query_asks_for_a_name_not_a_title_word(index):
    with pytest.raises(EmptyQuery) as info:
        find_author(index, "  ")
    assert "title" not in str(info.value)
    assert "name" in str(info.value)


# --------------------------------------------------------------------------- built in pieces (reloads off the loop)


def _same_index(a, b) -> None:
    assert set(vars(a)) == set(vars(b))
    for name, value in vars(a).items():
        other = vars(b)[name]
        if isinstance(value, np.ndarray):
            assert value.dtype == other.dtype and np.array_equal(value, other), name
        else:
            assert type(value) is type(other) and value == other, name


@pytest.mark.parametrize("piece_words", [1, 7, 100])
def test_an_index_sorted_in_pieces_is_the_one_sorted_at_once(piece_words):
    """Pieces keep each sort short (the GIL is held through it); the postings must not change."""
    schedule = parse_schedule(generate_schedule(40, seed=3), "gen.yaml")
    docs = [((TITLE, fold(t.title).split()), (AUTHOR, words(" ".join(t.authors))), (ABSTRACT, words(t.abstract))) for t in schedule.talks]
    # A title word repeated in the abstract keeps its title weight; a word in every abstract only its title hits.
    docs.append(((TITLE, ["graph", "common"]), (ABSTRACT, ["graph", "common"])))
    docs += [((ABSTRACT, ["common"]),)] * 60
    whole = TokenIndex(docs, piece_words=10**9)
    assert len(whole.docs) > 3 * piece_words
    _same_index(TokenIndex(docs, piece_words=piece_words), whole)


def test_an_index_of_nothing_is_empty():
    index = TokenIndex([])
    assert index.vocab == {} and len(index.docs) == 0 and index.indptr.tolist() == [0]
    assert index.docs.dtype == np.int32 and index.weights.dtype == np.float32


@pytest.mark.parametrize(
    "names",
    [
        ("山田", "太郎"),
        ("王 小明", "", "李"),
        ("Dokmanić", "--", "Γιάννης"),
        ("Ivan Dokmanić", "Jürgen B. Chen", "O'Brien", "``Quoted''"),
        ("こんにちは", "Ana", "山田"),
    ],
)
def test_author_words_folded_per_name_are_those_of_the_joined_names(names):
    from bot.core.search import _NameFolds

    assert _NameFolds().words(names) == words(" ".join(names)) == fold(" ".join(names)).split()


def test_ascii_words_are_the_folded_words():
    text = "On L2-regularization: a (very) *short* note_on_things, 3.5x faster! TL;DR"
    assert words(text) == fold(text).split()


def test_an_index_read_in_bulk_from_texts_is_the_one_read_word_by_word():
    """Titles, authors and abstracts are split a batch of talks at a time (one split, numpy finds each
    word's talk); the index is the same as from each talk's own words, whatever the batch."""
    text = generate_schedule(60, seed=4).replace("Learning", "Léarning $L_2$ Ærø 山田 太郎")
    schedule = parse_schedule(text, "gen.yaml")
    index = SearchIndex(schedule)
    docs = [((TITLE, fold(t.title).split()), (AUTHOR, fold(" ".join(t.authors)).split()), (ABSTRACT, words(t.abstract))) for t in schedule.talks]
    _same_index(index._talk_index, TokenIndex(docs))
    _same_index(index._talk_index, TokenIndex(docs, piece_words=50))
    assert any(not t.abstract.isascii() for t in schedule.talks) and any("$" in t.title for t in schedule.talks)


def test_words_parted_by_other_whitespace_still_find_their_documents():
    docs = [((TITLE, ["a\tb", "c"]),), ((ABSTRACT, ["d\u3000e"]),), ((TITLE, ["f"]), (ABSTRACT, ["g\x1fh"]))]
    index = TokenIndex(docs, piece_words=10**9)
    found = {term: index.docs[index.indptr[i] : index.indptr[i + 1]].tolist() for term, i in index.vocab.items()}
    assert found == {"a": [0], "b": [0], "c": [0], "d": [1], "e": [1], "f": [2], "g": [2], "h": [2]}
    assert index.sorted_terms == sorted(index.vocab) and list(index.vocab.values()) == list(range(8))


@pytest.mark.parametrize("probes", [1, 8])
def test_plain_ascii_words_found_by_numpy_are_the_words_split_finds(probes: int, monkeypatch):
    """Words of up to 16 bytes are packed into numbers and looked up in a numpy hash table; longer ones,
    and those a crowded table cannot place, in Python: each word gets the id of its own text."""
    import collections
    import random

    from bot.core.search import _PackedWords

    rng = random.Random(5)
    vocabulary = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(1, 30))) for _ in range(3000)]
    monkeypatch.setattr(_PackedWords, "PROBES", probes)
    packed, vocab = _PackedWords(), collections.defaultdict()
    vocab.default_factory = vocab.__len__  # as _Words has it: a new word gets the next id
    seen: set[str] = set()
    for _ in range(5):
        words_ = rng.choices(vocabulary, k=4000)
        seen.update(words_)
        text = ("  ".join(words_) + " ").encode()
        ids, starts = packed.split(text, vocab)
        by_id = {term: word for word, term in vocab.items()}
        assert [by_id[term] for term in ids.tolist()] == [w.encode() for w in words_]
        assert [text[a : a + 1] for a in starts[:3].tolist()] == [w[:1].encode() for w in words_[:3]]
    assert packed.count > 1000 and len(vocab) == len(seen)
    assert packed.split(b"a\tb", vocab) is None  # a separator other than a space: str.split decides
