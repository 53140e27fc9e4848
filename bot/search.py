"""Fuzzy lookup of talks and authors, built once at load.

An inverted index over folded tokens (titles, authors, abstracts) finds candidates cheaply;
rapidfuzz expands misspelt or half-typed words against the vocabulary and breaks ties.
Title and author hits weigh three times an abstract hit, so titles outrank abstracts.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import add, ge, itemgetter, mul, truediv

from rapidfuzz import fuzz, process

from bot.schedule import Schedule, Talk, gc_paused
from bot.text import fold

TITLE, AUTHOR, ABSTRACT = 0, 1, 2
FIELD_WEIGHT = (3.0, 3.0, 1.0)
# A result is "clearly ahead" when it beats the runner-up by this many points (0-100 scale).
CLEAR_MARGIN = 6.0
MIN_SCORE = 12.0
COVERAGE_FLOOR = 0.3
PHRASE_BONUS = 8.0
# Documents tied with the last place of a top-k are kept, up to this many in all.
TIE_CAP = 200
EXPANSION_CACHE_SIZE = 4096
EXPANSION_POSTINGS = 5_000
TOKEN_CACHE_SIZE = 256
PARTIAL_CACHE_SIZE = 16
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
        by_field: tuple[defaultdict[str, list[int]], ...] = (defaultdict(list), defaultdict(list), defaultdict(list))
        for doc_id, fields in enumerate(docs):
            seen: dict[int, set[str]] = {}
            for field_no, text in fields:
                terms = set(text.split())
                if field_no in seen:
                    terms -= seen[field_no]
                    seen[field_no] |= terms
                else:
                    seen[field_no] = terms
                # postings[term].append(doc_id) for each term, looped in C: a million of them at 10,000 talks.
                deque(map(list.append, map(by_field[field_no].__getitem__, terms), repeat(doc_id)), maxlen=0)
        self.size = max(1, len(docs))
        terms = by_field[0].keys() | by_field[1].keys() | by_field[2].keys()
        self.postings: dict[str, tuple[tuple[int, ...], ...]] = {t: tuple(tuple(f.get(t, ())) for f in by_field) for t in terms}
        self.df = {t: len(set().union(*p)) if sum(map(len, p)) else 0 for t, p in self.postings.items()}
        self.vocab = sorted(self.postings)
        by_length: dict[int, list[str]] = defaultdict(list)
        for term in self.vocab:
            by_length[len(term)].append(term)
        self.by_length = dict(by_length)
        self.common_cutoff = max(50, self.size // 4)
        self._expansions: dict[tuple[str, bool], list[tuple[str, float]]] = {}
        self._token_cache: dict[tuple[str, bool], tuple[dict[int, float], float, list[tuple[float, tuple[int, ...]]]]] = {}
        self._partial_cache: dict[tuple[tuple[str, bool], ...], _Partial] = {}

    def clear_caches(self) -> None:
        self._expansions.clear()
        self._token_cache.clear()
        self._partial_cache.clear()

    def idf(self, term: str) -> float:
        return math.log(1 + self.size / (1 + self.df.get(term, 0)))

    def expand(self, token: str, *, is_last: bool) -> list[tuple[str, float]]:
        """Vocabulary terms standing for a query token, each with how well it matches (0-1).

        Memoised: while a title is typed, every keystroke expands the same earlier words again.
        """
        key = (token, is_last)
        found = self._expansions.get(key)
        if found is None:
            if len(self._expansions) >= EXPANSION_CACHE_SIZE:
                self._expansions.clear()
            found = self._expansions[key] = self._expand(token, is_last=is_last)
        return found

    def _expand(self, token: str, *, is_last: bool) -> list[tuple[str, float]]:
        found: dict[str, float] = {}
        if token in self.postings:
            found[token] = 1.0
        if len(token) >= (2 if is_last else 4):
            lo = bisect_left(self.vocab, token)
            hi = bisect_left(self.vocab, token + "\uffff", lo)
            prefixed = self.vocab[lo:hi]
            if len(prefixed) > 40:
                prefixed = sorted(prefixed, key=self.df.__getitem__, reverse=True)[:40]
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
        tokens = self._tokens(query, prefix_last)
        if not tokens:
            return {}
        part = self._partial(tokens)
        if not part.weight:
            return {}
        return dict(zip(part.scores, self._shares(part.scores.values(), part.covered.values(), part.weight), strict=True))

    def top(self, query: str, k: int, *, prefix_last: bool = True) -> list[tuple[int, float]]:
        """The k best (doc, score) of `score`, best first, plus any tied with the k-th (TIE_CAP in all).

        Typing a title asks the same first words again at every keystroke: their summed gains are
        kept (`_partial`), so a keystroke adds one token to them. Documents that only the last token
        matches are taken from its best levels, as many as can place.
        """
        tokens = self._tokens(query, prefix_last)
        if not tokens:
            return []
        head = self._partial(tokens[:-1])
        last, last_weight, last_levels = self._token(*tokens[-1])
        total = head.weight + last_weight
        if not total:
            return []
        # Every document of the earlier words, scored with the last word added, in C-level maps.
        docs = list(head.scores)
        sums = map(add, head.scores.values(), map(last.get, docs, repeat(0.0)))
        covers = map(add, head.covered.values(), map(mul, map(last.__contains__, docs), repeat(last_weight)))
        shares = self._shares(sums, covers, total)
        tail = self._last_only(head.scores, last_levels, last_weight, total, k)
        shares += (share for share, _ in tail)
        docs += (doc for _, doc in tail)
        found = zip(shares, docs, strict=True)
        if len(shares) > k:
            cut = sorted(shares, reverse=True)[k - 1]
            found = compress(found, map(ge, shares, repeat(cut)))
        found = sorted(found, key=lambda sd: (-sd[0], sd[1]))[: max(k, TIE_CAP)]
        return [(doc, share) for share, doc in found]

    def scores_of(self, query: str, docs: Sequence[int], *, prefix_last: bool = True) -> list[tuple[int, float]]:
        """(doc, score) as `score` gives them, for the given documents only (those that match at all)."""
        tokens = self._tokens(query, prefix_last)
        if not tokens or not docs:
            return []
        head = self._partial(tokens[:-1])
        last, last_weight, _ = self._token(*tokens[-1])
        docs = [d for d in docs if d in head.scores or d in last]
        sums = map(add, map(head.scores.get, docs, repeat(0.0)), map(last.get, docs, repeat(0.0)))
        covers = map(add, map(head.covered.get, docs, repeat(0.0)), map(mul, map(last.__contains__, docs), repeat(last_weight)))
        return list(zip(docs, self._shares(sums, covers, head.weight + last_weight), strict=True))

    def _last_only(self, head: dict[int, float], levels: list, weight: float, total: float, k: int) -> list[tuple[float, int]]:
        """Documents that only the last token matches: its best-gain levels, until k are found."""
        picked: dict[int, float] = {}
        for gain, docs in reversed(levels):
            if len(picked) >= k:
                break
            for doc in docs:
                if doc not in head and doc not in picked:
                    picked[doc] = gain
                    if len(picked) >= max(k, TIE_CAP):
                        break
        return list(zip(self._shares(picked.values(), repeat(weight), total), picked, strict=False))

    @staticmethod
    def _shares(gains: Iterable[float], covers: Iterable[float], total: float) -> list[float]:
        """Share of the best possible (every token in a title), scaled by how much of the query the
        document covers at all (two abstract words beat one title word); evaluated with C-level maps."""
        best, spread = FIELD_WEIGHT[TITLE] * total, 1 - COVERAGE_FLOOR
        coverage = map(add, repeat(COVERAGE_FLOOR), map(truediv, map(mul, repeat(spread), covers), repeat(total)))
        return list(map(min, repeat(100.0), map(mul, map(truediv, map(mul, repeat(100.0), gains), repeat(best)), coverage)))

    def _tokens(self, query: str, prefix_last: bool) -> tuple[tuple[str, bool], ...]:
        words = [t for t in query.split() if t not in STOPWORDS] or query.split()
        # A lone letter (a middle initial, the first keystroke of a word) matches too much to rank by.
        tokens = [t for t in words if len(t) > 1] or words
        return tuple((t, prefix_last and i == len(tokens) - 1) for i, t in enumerate(tokens))

    def _token(self, token: str, is_last: bool) -> tuple[dict[int, float], float, list[tuple[float, tuple[int, ...]]]]:
        """A token's best gain per document, its weight in the query, and its levels; memoised."""
        key = (token, is_last)
        cached = self._token_cache.get(key)
        if cached is None:
            levels = self._levels(token, is_last=is_last)
            # Later (higher) gains overwrite earlier ones: each document keeps its best.
            flat_docs = chain.from_iterable(docs for _, docs in levels)
            flat_gains = chain.from_iterable(repeat(gain, len(docs)) for gain, docs in levels)
            weight = self.idf(token) if token in self.postings else math.log(1 + self.size)
            cached = (dict(zip(flat_docs, flat_gains, strict=True)), weight, levels)
            if len(self._token_cache) >= TOKEN_CACHE_SIZE:
                self._token_cache.clear()
            self._token_cache[key] = cached
        return cached

    def _partial(self, tokens: tuple[tuple[str, bool], ...]) -> _Partial:
        """Gains and coverage summed over `tokens` in query order; memoised, grown from the longest known prefix."""
        part = self._partial_cache.get(tokens)
        if part is not None:
            return part
        known = len(tokens) - 1
        while known > 0 and tokens[:known] not in self._partial_cache:
            known -= 1
        base = self._partial_cache.get(tokens[:known]) if known else None
        scores = dict(base.scores) if base else {}
        covered = dict(base.covered) if base else {}
        weight = base.weight if base else 0.0
        for token in tokens[known:]:
            best, token_weight, _ = self._token(*token)
            docs = list(best)
            scores.update(zip(docs, list(map(add, map(scores.get, docs, repeat(0.0)), best.values())), strict=True))
            covered.update(zip(docs, list(map(add, map(covered.get, docs, repeat(0.0)), repeat(token_weight))), strict=True))
            weight += token_weight
        part = _Partial(scores, covered, weight)
        if len(self._partial_cache) >= PARTIAL_CACHE_SIZE:
            self._partial_cache.clear()
        self._partial_cache[tokens] = part
        return part

    def _levels(self, token: str, *, is_last: bool) -> list[tuple[float, tuple[int, ...]]]:
        """(gain, postings) for each field of each expansion of a token, in rising gain order.

        Exact matches always count; postings reached by prefix or fuzzy expansion stop counting
        past EXPANSION_POSTINGS (weakest first), so two typed letters cannot touch every document.
        """
        levels = []
        for term, quality in self.expand(token, is_last=is_last):
            idf = self.idf(term)
            for field_no, docs in enumerate(self.postings[term]):
                if docs and not (field_no == ABSTRACT and len(docs) > self.common_cutoff):
                    levels.append((quality * FIELD_WEIGHT[field_no] * idf, docs, term == token))
        levels.sort(key=itemgetter(0), reverse=True)
        kept, volume = [], 0
        for gain, docs, exact in levels:
            if exact or volume + len(docs) <= EXPANSION_POSTINGS:
                kept.append((gain, docs))
                volume += len(docs)
        kept.reverse()
        return kept


@dataclass(slots=True)
class _Partial:
    """Summed gains and coverage of the first tokens of a query, kept between keystrokes."""

    scores: dict[int, float]
    covered: dict[int, float]
    weight: float


def _author_key(folded_name: str) -> str:
    return re.sub(r"\s+", "-", folded_name)[:100] or "author"


class SearchIndex:
    """Talk and author lookup over one schedule; build once, query many times."""

    def __init__(self, schedule: Schedule) -> None:
        with gc_paused():  # a million long-lived objects at 10,000 talks: see gc_paused
            self._build(schedule)

    def _build(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.talks = schedule.talks
        self._titles = [fold(t.title) for t in self.talks]
        self._abstracts = [fold(t.abstract) for t in self.talks]
        self._title_order = sorted(range(len(self._titles)), key=self._titles.__getitem__)
        self._sorted_titles = [self._titles[i] for i in self._title_order]
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
                mine = talks_of[key]
                if not mine or mine[-1] is not talk:  # talks come one at a time: a repeat is the last one
                    mine.append(talk)
        return [Author(key, names[key], tuple(talks_of[key])) for key in names]

    # ------------------------------------------------------------------ talks

    def find_talks(self, query: str, limit: int = 10, *, prefix_last: bool = True) -> list[Match]:
        """Ranked talks for free text, best first; empty when nothing matches at all."""
        q = fold(query)
        if not q:
            return []
        top = self._talk_index.top(q, max(limit, 30), prefix_last=prefix_last)
        if not top:
            return []
        ranked = []
        phrase = " " in q
        if phrase:  # a title typed from its start is a candidate even when many talks share its words
            shown = {doc for doc, _ in top}
            top += self._talk_index.scores_of(q, [d for d in self._titles_starting(q) if d not in shown], prefix_last=prefix_last)
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

    def _titles_starting(self, prefix: str, most: int = 5) -> list[int]:
        """Talks whose folded title starts with `prefix`, by bisection over the sorted titles."""
        lo = bisect_left(self._sorted_titles, prefix)
        hi = bisect_left(self._sorted_titles, prefix + "\uffff", lo, min(lo + most, len(self._sorted_titles)))
        return self._title_order[lo:hi]

    def close_titles(self, query: str, limit: int = 3) -> list[Talk]:
        """Titles that look like the query, for "did you mean" when the index finds nothing."""
        q = fold(query)
        hits = process.extract(q, self._titles, scorer=fuzz.WRatio, limit=limit, score_cutoff=50) if q else []
        return [self.talks[i] for _, _, i in hits]

    # ------------------------------------------------------------------ authors

    def clear_caches(self) -> None:
        """Forget memoised expansions and partial sums, so the next query is timed cold (benchmarks)."""
        for index in (self._talk_index, self._author_index):
            index.clear_caches()

    def author(self, key: str) -> Author | None:
        return self._by_key.get(key)

    def author_named(self, name: str) -> Author | None:
        return self._by_key.get(_author_key(fold(name)))

    def find_authors(self, query: str, limit: int = 10) -> list[AuthorMatch]:
        q = fold(query)
        if not q:
            return []
        top = self._author_index.top(q, max(limit, 30))
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
