"""Search quality: what an attendee types must find the right talk or author first."""

from __future__ import annotations

import pytest

from bot.core.answers import find_author, find_talk, suggest_authors, suggest_talks
from bot.core.errors import AmbiguousQuery, AuthorNotFound, EmptyQuery, TalkNotFound
from bot.core.text import fold, plain_text
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
