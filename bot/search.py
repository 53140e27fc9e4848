"""Fuzzy lookup of talks and authors, built once at load.

An inverted index over folded tokens (titles, authors, abstracts) finds candidates cheaply;
rapidfuzz expands misspelt or half-typed words against the vocabulary and breaks ties.
Title and author hits weigh three times an abstract hit, so titles outrank abstracts.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from bot.schedule import Schedule, Talk
from bot.text import fold

TITLE, AUTHOR, ABSTRACT = 0, 1, 2
FIELD_WEIGHT = (3.0, 3.0, 1.0)
# A result is "clearly ahead" when it beats the runner-up by this many points (0-100 scale).
CLEAR_MARGIN = 6.0
MIN_SCORE = 12.0
COVERAGE_FLOOR = 0.3
PHRASE_BONUS = 8.0
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "to",
        "via",
        "with",
        "we",
        "our",
        "this",
        "that",
    ]
)


@dataclass(frozen=True, slots=True)
class Match:
    talk: Talk
    score: float


@dataclass(frozen=True, slots=True)
class Author:
    key: str
    name: str
    talks: tuple[Talk, ...]


@dataclass(frozen=True, slots=True)
class AuthorMatch:
    author: Author
    score: float


class TokenIndex:
    """Documents made of weighted fields; query tokens match exactly, by prefix or fuzzily."""

    def __init__(self, docs: Sequence[Sequence[tuple[int, str]]]) -> None:
        postings: dict[str, list[list[int]]] = defaultdict(lambda: [[], [], []])
        for doc_id, fields in enumerate(docs):
            seen: set[tuple[str, int]] = set()
            for field_no, text in fields:
                for term in text.split():
                    if (term, field_no) not in seen:
                        seen.add((term, field_no))
                        postings[term][field_no].append(doc_id)
        self.size = max(1, len(docs))
        self.postings: dict[str, tuple[tuple[int, ...], ...]] = {t: tuple(map(tuple, p)) for t, p in postings.items()}
        self.df = {t: len(set().union(*p)) if sum(map(len, p)) else 0 for t, p in self.postings.items()}
        self.vocab = sorted(self.postings)
        by_length: dict[int, list[str]] = defaultdict(list)
        for term in self.vocab:
            by_length[len(term)].append(term)
        self.by_length = dict(by_length)
        self.common_cutoff = max(50, self.size // 4)

    def idf(self, term: str) -> float:
        return math.log(1 + self.size / (1 + self.df.get(term, 0)))

    def expand(self, token: str, *, is_last: bool) -> list[tuple[str, float]]:
        """Vocabulary terms standing for a query token, each with how well it matches (0-1)."""
        found: dict[str, float] = {}
        if token in self.postings:
            found[token] = 1.0
        if len(token) >= (2 if is_last else 4):
            lo = bisect_left(self.vocab, token)
            hi = bisect_left(self.vocab, token + "\uffff", lo)
            prefixed = self.vocab[lo:hi]
            if len(prefixed) > 40:
                prefixed = sorted(prefixed, key=lambda t: -self.df[t])[:40]
            for term in prefixed:
                found.setdefault(term, 0.9 if is_last else 0.8)
        if len(token) >= 4 and token not in self.postings:
            cutoff = 75 if len(token) <= 5 else 78 if len(token) <= 7 else 72
            for length in range(len(token) - 2, len(token) + 3):
                bucket = self.by_length.get(length)
                if bucket:
                    for term, score, _ in process.extract(token, bucket, scorer=fuzz.ratio, score_cutoff=cutoff, limit=5):
                        found[term] = max(found.get(term, 0.0), 0.85 * score / 100)
        return list(found.items())

    def score(self, query: str, *, prefix_last: bool = True) -> dict[int, float]:
        """Scores 0-100 per document: the share of the query's weight that the document matches."""
        tokens = [t for t in query.split() if t not in STOPWORDS] or query.split()
        scores: dict[int, float] = defaultdict(float)
        covered: dict[int, float] = defaultdict(float)
        total = 0.0
        for i, token in enumerate(tokens):
            expansions = self.expand(token, is_last=prefix_last and i == len(tokens) - 1)
            best_idf = self.idf(token) if token in self.postings else math.log(1 + self.size)
            total += best_idf
            token_best: dict[int, float] = {}
            for term, quality in expansions:
                idf = self.idf(term)
                for field_no, docs in enumerate(self.postings[term]):
                    if field_no == ABSTRACT and len(docs) > self.common_cutoff:
                        continue
                    gain = quality * FIELD_WEIGHT[field_no] * idf
                    for doc in docs:
                        if gain > token_best.get(doc, 0.0):
                            token_best[doc] = gain
            for doc, gain in token_best.items():
                scores[doc] += gain
                covered[doc] += best_idf
        if not total:
            return {}
        # Share of the best possible (every token in a title), scaled by how much of the
        # query the document covers at all: two abstract words beat one title word.
        best = FIELD_WEIGHT[TITLE] * total
        return {doc: min(100.0, 100.0 * s / best * (COVERAGE_FLOOR + (1 - COVERAGE_FLOOR) * covered[doc] / total)) for doc, s in scores.items()}


def _author_key(folded_name: str) -> str:
    return re.sub(r"\s+", "-", folded_name)[:100] or "author"


class SearchIndex:
    """Talk and author lookup over one schedule; build once, query many times."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.talks = schedule.talks
        self._titles = [fold(t.title) for t in self.talks]
        self._abstracts = [fold(t.abstract) for t in self.talks]
        self._talk_index = TokenIndex(
            [
                [(TITLE, title), (AUTHOR, " ".join(fold(a) for a in t.authors)), (ABSTRACT, abstract)]
                for t, title, abstract in zip(self.talks, self._titles, self._abstracts, strict=True)
            ]
        )
        self.authors = self._collect_authors(self.talks)
        self._by_key = {a.key: a for a in self.authors}
        self._author_names = [fold(a.name) for a in self.authors]
        self._author_index = TokenIndex([[(AUTHOR, name)] for name in self._author_names])

    @staticmethod
    def _collect_authors(talks: Iterable[Talk]) -> list[Author]:
        names: dict[str, str] = {}
        talks_of: dict[str, list[Talk]] = defaultdict(list)
        for talk in talks:
            for name in talk.authors:
                key = _author_key(fold(name))
                names.setdefault(key, name)
                if talk not in talks_of[key]:
                    talks_of[key].append(talk)
        return [Author(key, names[key], tuple(talks_of[key])) for key in names]

    # ------------------------------------------------------------------ talks

    def find_talks(self, query: str, limit: int = 10, *, prefix_last: bool = True) -> list[Match]:
        """Ranked talks for free text, best first; empty when nothing matches at all."""
        q = fold(query)
        if not q:
            return []
        scores = self._talk_index.score(q, prefix_last=prefix_last)
        if not scores:
            return []
        top = sorted(scores.items(), key=lambda kv: -kv[1])[: max(limit, 30)]
        ranked = []
        phrase = " " in q
        for doc, score in top:
            # A little title similarity breaks ties between equally good token matches;
            # the words typed as a phrase, in that order, count for more.
            bonus = 2.0 * fuzz.partial_ratio(q, self._titles[doc]) / 100 if len(q) > 2 else 0.0
            if phrase and q in self._titles[doc]:
                bonus += PHRASE_BONUS
            elif phrase and q in self._abstracts[doc]:
                bonus += PHRASE_BONUS * 0.75
            ranked.append((score + bonus, doc))
        ranked.sort(key=lambda sd: (-sd[0], self.talks[sd[1]].start))
        return [Match(self.talks[doc], round(min(score, 100.0), 1)) for score, doc in ranked[:limit] if score >= MIN_SCORE]

    def close_titles(self, query: str, limit: int = 3) -> list[Talk]:
        """Titles that look like the query, for "did you mean" when the index finds nothing."""
        q = fold(query)
        hits = process.extract(q, self._titles, scorer=fuzz.WRatio, limit=limit, score_cutoff=50) if q else []
        return [self.talks[i] for _, _, i in hits]

    # ------------------------------------------------------------------ authors

    def author(self, key: str) -> Author | None:
        return self._by_key.get(key)

    def author_named(self, name: str) -> Author | None:
        return self._by_key.get(_author_key(fold(name)))

    def find_authors(self, query: str, limit: int = 10) -> list[AuthorMatch]:
        q = fold(query)
        if not q:
            return []
        scores = self._author_index.score(q)
        top = sorted(scores.items(), key=lambda kv: -kv[1])[: max(limit, 30)]
        ranked = []
        for doc, score in top:
            similarity = fuzz.WRatio(q, self._author_names[doc])
            ranked.append((0.8 * score + 0.2 * similarity, doc))
        ranked.sort(key=lambda sd: (-sd[0], self._author_names[sd[1]]))
        return [AuthorMatch(self.authors[doc], round(score, 1)) for score, doc in ranked[:limit] if score >= MIN_SCORE]

    def close_authors(self, query: str, limit: int = 3) -> list[Author]:
        q = fold(query)
        hits = process.extract(q, self._author_names, scorer=fuzz.WRatio, limit=limit, score_cutoff=50) if q else []
        return [self.authors[i] for _, _, i in hits]


def clearly_ahead(scores: Sequence[float]) -> bool:
    """True when the first score leaves the runner-up behind by a clear margin."""
    return len(scores) < 2 or scores[0] - scores[1] >= CLEAR_MARGIN
