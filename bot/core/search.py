"""Fuzzy lookup of talks and authors, built once at load.

An inverted index over folded tokens (titles, authors, abstracts) finds candidates cheaply;
rapidfuzz expands misspelt or half-typed words against the vocabulary and breaks ties.
Title and author hits weigh three times an abstract hit, so titles outrank abstracts.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from array import array
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from bot.core.schedule import Schedule, Session, Talk, gc_paused, give_way
from bot.core.text import ASCII_SPACES, fold, fold_joined

TITLE, AUTHOR, ABSTRACT = 0, 1, 2
FIELD_WEIGHT = (3.0, 3.0, 1.0)
# A result is "clearly ahead" when it beats the runner-up by this many points (0-100 scale).
CLEAR_MARGIN = 6.0
MIN_SCORE = 12.0
COVERAGE_FLOOR = 0.3
PHRASE_BONUS = 8.0
START_BONUS = 3.0  # the query is how the title begins
TITLE_LIKENESS = 5.0  # points for a title that reads like the query (fuzz.partial_ratio)
UNKNOWN_WORD_FACTOR = 0.8
# Documents tied with the last place of a top-k are kept, up to this many in all.
TIE_CAP = 40
PREFIX_TERMS = 16  # a half-typed word stands for at most this many completions
FUZZY_TERMS = 5  # and a misspelt one for at most this many spellings
GAIN_CACHE_SIZE = 64  # per-word score vectors kept between keystrokes
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
    """A person of the schedule: the talks they author and the sessions they chair (either may be empty)."""

    key: str
    name: str
    talks: tuple[Talk, ...]
    chaired: tuple[Session, ...]


@dataclass(frozen=True, slots=True)
class AuthorMatch:
    author: Author
    score: float


PIECE_WORDS = 1 << 16
"""Words per piece of a TokenIndex build: sorting one piece holds the GIL for a few milliseconds."""
_WEIGHTS = np.asarray(FIELD_WEIGHT, np.float32)

_Postings = tuple[np.ndarray, np.ndarray, np.ndarray]  # terms, documents, weights


_RANKS = np.unique(-_WEIGHTS, return_inverse=True)[1].astype(np.int32)  # per field: 0 for the heaviest weight, 1 for the next, ...
_RANK_WEIGHTS = -np.unique(-_WEIGHTS)
_Field = tuple[int, Sequence[int], str | bytes, Sequence[int]]
"""A field of some documents: the field, the documents, their folded texts joined by one space (bytes when
plain ASCII), and the length of each."""
_Batch = tuple[int, list[_Field]]
"""Documents up to (not including) a number, and the fields that some of them have."""


_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], np.uint64)  # the first n bytes of a 64-bit number
_MIXED = 0x9E3779B97F4A7C15
_MIX = np.uint64(_MIXED)


class _PackedWords:
    """Words of plain ASCII letters and digits found and looked up by numpy, without a Python string each.

    A word of up to 16 bytes is two 64-bit numbers, its bytes (exact: no word holds a zero byte). The
    words met so far sit in an open-addressing hash table of numpy arrays, so a batch's words are found
    by a few vectorised probes; only new words, longer ones, and those whose probes run long are looked
    up in Python.
    """

    PROBES = 8

    def __init__(self) -> None:
        self.bits = 14
        self.low = np.zeros(1 << self.bits, np.uint64)  # per slot, the word's bytes
        self.high = np.zeros(1 << self.bits, np.uint64)
        self.ids = np.full(1 << self.bits, -1, np.int32)  # -1: an empty slot
        self.count = 0

    def split(self, joined: bytes, vocab: dict) -> tuple[np.ndarray, np.ndarray] | None:
        """The term id and the start of each word of `joined`; None for text with other separators than spaces."""
        size = len(joined)
        buffer = np.frombuffer(joined + bytes(16), np.uint8)
        chars = buffer[:size]
        if np.any((chars < 33) & (chars != 32)):  # a tab, a line or a control character: words as str.split finds them
            return None
        edges = np.flatnonzero(np.diff(np.concatenate(([False], chars != 32, [False])).view(np.int8)))
        starts, ends = edges[0::2], edges[1::2]
        lengths = ends - starts
        eight = np.ndarray((size + 8,), "<u8", buffer=buffer, strides=(1,))  # the 8 bytes from each place
        low = eight[starts] & _MASKS[np.minimum(lengths, 8)]
        high = np.where(lengths > 8, eight[starts + 8] & _MASKS[np.clip(lengths - 8, 0, 8)], np.uint64(0))
        ids = self.find(low, high)
        short = lengths <= 16
        new = np.flatnonzero((ids < 0) & short)
        if len(new):
            # One of each new word, told apart by a 64-bit mix of its bytes: two words that mixed alike
            # would leave one out of the table, to be looked up in Python below, never mixed up.
            _, first = np.unique(low[new] ^ (high[new] * _MIX), return_index=True)
            new_words = new[first]
            terms = [vocab[joined[a:b]] for a, b in zip(starts[new_words].tolist(), ends[new_words].tolist(), strict=True)]
            self.add_many(low[new_words], high[new_words], np.asarray(terms, np.int32))
            ids[new] = self.find(low[new], high[new])
        for n in np.flatnonzero((ids < 0) | ~short).tolist():  # longer than 16 bytes, or in a crowded part of the table
            ids[n] = vocab[joined[starts[n] : ends[n]]]
        return ids, starts

    def slots(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        return (((low ^ (high * _MIX)) * _MIX) >> np.uint64(64 - self.bits)).astype(np.intp)

    def find(self, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Each word's id, or -1 when it is not in the table."""
        slots = self.slots(low, high)
        mask = (1 << self.bits) - 1
        ids = self.ids[slots]  # the first probe, over all words at once (most are found there)
        match = (ids >= 0) & (self.low[slots] == low) & (self.high[slots] == high)
        waiting = np.flatnonzero(~match & (ids >= 0))  # an empty slot ends the search: not in the table
        ids[~match] = -1
        for step in range(1, self.PROBES):
            if not len(waiting):
                break
            at = (slots[waiting] + step) & mask
            there = self.ids[at]
            match = (there >= 0) & (self.low[at] == low[waiting]) & (self.high[at] == high[waiting])
            ids[waiting[match]] = there[match]
            waiting = waiting[~match & (there >= 0)]
        return ids

    def add(self, low: int, high: int, term: int) -> None:
        self.add_many(np.array([low], np.uint64), np.array([high], np.uint64), np.array([term], np.int32))

    def add_many(self, low: np.ndarray, high: np.ndarray, terms: np.ndarray) -> None:
        """Words that are not in the table yet (each once), placed by linear probing, all at once.

        Each probe step places, in every free slot that some words want, the first of them; the others
        try the next slot. A word that finds no free slot in PROBES steps is left out (a crowded
        neighbourhood) and looked up in Python each time. Slots are never emptied, so find() still
        meets every word before an empty slot.
        """
        while (self.count + len(low)) * 4 > len(self.ids):
            self.grow()
        mask = (1 << self.bits) - 1
        slots = self.slots(low, high)
        waiting = np.arange(len(low))
        for step in range(self.PROBES):
            at = (slots[waiting] + step) & mask
            free = self.ids[at] < 0
            wanted, by = np.unique(at[free], return_index=True)  # the first word that wants each free slot
            placed = waiting[free][by]
            self.low[wanted], self.high[wanted], self.ids[wanted] = low[placed], high[placed], terms[placed]
            self.count += len(placed)
            left = np.ones(len(low), bool)
            left[placed] = False
            waiting = waiting[left[waiting]]
            if not len(waiting):
                break

    def grow(self) -> None:
        kept = np.flatnonzero(self.ids >= 0)
        old = self.low[kept], self.high[kept], self.ids[kept]
        self.bits += 1
        self.low = np.zeros(1 << self.bits, np.uint64)
        self.high = np.zeros(1 << self.bits, np.uint64)
        self.ids = np.full(1 << self.bits, -1, np.int32)
        self.count = 0
        self.add_many(*old)


def _runs(terms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted array and how many times each comes."""
    if not len(terms):
        return terms, np.zeros(0, np.int64)
    firsts = np.flatnonzero(np.concatenate(([True], terms[1:] != terms[:-1])))
    return terms[firsts], np.diff(np.append(firsts, len(terms)))


def _texts_of(starts: np.ndarray, lengths: Sequence[int]) -> np.ndarray:
    """Which text each word is in, from where the words start (sorted) in texts of these lengths joined by one space."""
    ends = np.cumsum(np.asarray(lengths, np.int64) + 1)  # each text's end, and its space
    counts = np.diff(np.searchsorted(starts, ends), prepend=0)  # a few searches in the words, not one per word in the texts
    return np.repeat(np.arange(len(ends)), counts)


class _Words:
    """The words of a batch of documents, as term ids and their documents, read in bulk.

    Each field of the batch is joined into one text and split once; where each word starts (found by
    numpy in the joined text) says its document. A word is looked up in the vocabulary as it comes:
    new words get the next id, which TokenIndex renumbers in sorted order at the end.
    """

    def __init__(self) -> None:
        self.vocab: defaultdict[str, int] = defaultdict()
        self.vocab.default_factory = self.vocab.__len__  # all in C: a new word gets the next id
        self.pieces: list[tuple[np.ndarray, np.ndarray]] = []  # per piece: term ids, document << 2 | weight rank
        self.words = 0
        self.packed = _PackedWords()

    def add(self, fields: list[_Field]) -> None:
        terms, owners = [], []
        for field, docs, joined, lengths in fields:
            give_way()
            ids, where = self.split(joined, lengths)
            terms.append(ids)
            owners.append((np.asarray(docs, np.int32)[where] << 2) | _RANKS[field])
        if terms:
            self.pieces.append((np.concatenate(terms), np.concatenate(owners)))
            self.words += len(self.pieces[-1][0])

    def split(self, joined: str | bytes, lengths: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The term id of each word of texts joined by a space, and which text (of these lengths) it is in.

        Words of plain ASCII may come as bytes: TokenIndex makes them text once, as it renumbers.
        """
        if type(joined) is bytes:
            found = self.packed.split(joined, self.vocab)
            if found is not None:
                ids, starts = found
                return ids, _texts_of(starts, lengths)
        words = joined.split()
        if not words:
            return np.zeros(0, np.int32), np.zeros(0, np.intp)
        ids = np.frombuffer(array("i", map(self.vocab.__getitem__, words)), np.intc).astype(np.int32)
        if type(joined) is bytes:
            chars = np.frombuffer(joined, np.uint8)
        elif joined.isascii():
            chars = np.frombuffer(joined.encode("ascii"), np.uint8)
        else:
            chars = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), np.uint32)
        letter = chars != 32
        starts = np.flatnonzero(letter & np.concatenate(([True], ~letter[:-1])))
        ends = np.cumsum(np.asarray(lengths, np.int64) + 1)
        if len(starts) != len(words):  # a separator other than a space (never in folded text): count text by text
            counts = [len(joined[end - length - 1 : end - 1].split()) for length, end in zip(lengths, ends.tolist(), strict=True)]
            return ids, np.repeat(np.arange(len(lengths)), counts)
        return ids, _texts_of(starts, lengths)

    def postings(self, piece: int, renumber: np.ndarray) -> _Postings:
        """One posting per (term, document), with the weight of its best field, sorted by term then document."""
        terms, owners = self.pieces[piece]
        self.pieces[piece] = None  # type: ignore[call-overload]  # let go as soon as sorted
        if not len(terms):
            return terms, terms, _RANK_WEIGHTS[terms]
        first_doc = int(owners.min()) >> 2
        owners = owners - (first_doc << 2)  # documents counted from the piece's first: fewer bits
        shift = max(2, int(owners.max()).bit_length())
        wide = shift + (len(renumber) - 1).bit_length() > 31  # one key per word, sorted: 32 bits sort twice as fast as 64
        keys = np.sort(renumber[terms].astype(np.int64 if wide else np.int32) << shift | owners)
        first = np.ones(len(keys), bool)
        first[1:] = (keys[1:] >> 2) != (keys[:-1] >> 2)  # the first of a (term, document) has its best weight
        keys = keys[first]
        docs = ((keys & ((1 << shift) - 1)) >> 2).astype(np.int32) + first_doc
        return (keys >> shift).astype(np.int32), docs, _RANK_WEIGHTS[keys & 3]


def _batches_of_words(docs: Iterable[Iterable[tuple[int, Iterable[str]]]], piece_words: int) -> Iterator[_Batch]:
    """Documents given as lists of words, in batches of about `piece_words` words."""
    fields: dict[int, tuple[list[int], list[str]]] = {}
    count, doc = 0, -1
    for doc, doc_fields in enumerate(docs):
        give_way()
        for field, field_words in doc_fields:
            listed = list(field_words)
            numbers, texts = fields.setdefault(field, ([], []))
            numbers.append(doc)
            texts.append(" ".join(listed))
            count += len(listed)
        if count >= piece_words:  # whole documents only: a piece dedupes its (term, document) pairs
            yield doc + 1, [_field_of(field, numbers, texts) for field, (numbers, texts) in fields.items()]
            fields, count = {}, 0
    yield doc + 1, [_field_of(field, numbers, texts) for field, (numbers, texts) in fields.items()]


def _field_of(field: int, docs: Sequence[int], texts: list[str]) -> _Field:
    return field, docs, " ".join(texts), list(map(len, texts))


class TokenIndex:
    """Documents made of weighted fields; query tokens match exactly, by prefix or fuzzily.

    Postings are numpy arrays in CSR form (term -> documents, weights), and scoring works on dense
    per-document vectors, so a query costs a few vector operations, not a Python loop per posting.
    Term ids are the places of the terms in sorted order.
    """

    def __init__(self, docs: Iterable[Iterable[tuple[int, Iterable[str]]]], *, min_prefix: int = 2, piece_words: int = PIECE_WORDS) -> None:
        """`docs`: per document, (field, words) pairs; the words already folded.

        `min_prefix`: how many letters a half-typed last word needs before it stands for its completions.
        `piece_words`: how many words are sorted at a time (the index is the same whatever it is).
        """
        self._build(_batches_of_words(docs, piece_words), min_prefix)

    @classmethod
    def of_texts(cls, batches: Iterable[_Batch], *, min_prefix: int = 2) -> TokenIndex:
        """From batches of consecutive documents: per field, the documents and the folded text of each.

        Words are split and looked up a batch at a time, in bulk; each batch is sorted on its own.
        """
        index = cls.__new__(cls)
        index._build(batches, min_prefix)
        return index

    def _build(self, batches: Iterable[_Batch], min_prefix: int) -> None:
        self.min_prefix = min_prefix
        words = _Words()
        size = 0
        for stop, fields in batches:
            words.add(fields)
            size = stop
        self.size = max(1, size)
        found = [word.decode("utf-8", "surrogatepass") if type(word) is bytes else word for word in words.vocab]  # in the order of their ids
        words.vocab.clear()
        self.sorted_terms = sorted(set(found))
        self.vocab = dict(zip(self.sorted_terms, range(len(self.sorted_terms)), strict=True))
        renumber = np.fromiter(map(self.vocab.__getitem__, found), np.int32, len(found))  # a word met as bytes and as text is one term
        self._build_postings([words.postings(n, renumber) for n in range(len(words.pieces))])
        self.sorted_ids = np.arange(len(self.vocab), dtype=np.int32)
        by_length: dict[int, list[str]] = defaultdict(list)
        for term in self.sorted_terms:
            by_length[len(term)].append(term)
        self.by_length = dict(by_length)
        self._gains: dict[tuple[str, bool], tuple[np.ndarray, float] | None] = {}

    def _build_postings(self, pieces: list[_Postings]) -> None:
        """CSR postings (term -> documents, weights) from pieces of consecutive documents.

        Each piece is sorted on its own and put in place by offsets, never one sort of them all:
        numpy holds the GIL through a sort, and a reload in a worker thread must let the event loop in.
        Each step works on a piece's own terms only, never on the whole vocabulary (which at 100,000
        talks made the pieces' bookkeeping quadratic).
        """
        count = len(self.vocab)
        df = np.zeros(count, np.int64)
        for terms, _, _ in pieces:
            present, lengths = _runs(terms)
            df[present] += lengths  # a piece's (term, document) pairs are unique: its runs count documents
        self.idf = np.log1p(self.size / (1.0 + df)).astype(np.float32)
        self.df = df
        # Words in a quarter of all abstracts say little and cost much: keep only their title/author hits.
        common = df > max(50, self.size // 4)
        kept: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        per_term = np.zeros(count, np.int64)
        while pieces:
            give_way()
            terms, docs, weights = pieces.pop()
            keep = ~(common[terms] & (weights == FIELD_WEIGHT[ABSTRACT]))
            terms, docs, weights = terms[keep], docs[keep], weights[keep]
            present, lengths = _runs(terms)
            per_term[present] += lengths
            kept.append((terms, docs, weights, present, lengths))
        kept.reverse()  # in the order of the documents again
        self.indptr = np.zeros(count + 1, np.int64)
        np.cumsum(per_term, out=self.indptr[1:])
        self.docs = np.empty(self.indptr[-1], np.int32)
        self.weights = np.empty(self.indptr[-1], np.float32)
        free = self.indptr[:-1].copy()  # per term, where its next documents go
        while kept:
            give_way()
            terms, docs, weights, present, lengths = kept.pop(0)
            # A piece is sorted by term: the k-th posting of a run of term t goes k places after free[t].
            firsts = np.cumsum(lengths) - lengths
            places = free[terms] + np.arange(len(terms)) - np.repeat(firsts, lengths)
            self.docs[places] = docs
            self.weights[places] = weights
            free[present] += lengths

    def clear_caches(self) -> None:
        self._gains.clear()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_gains": {}}

    def idf_of(self, term: str) -> float:
        term_id = self.vocab.get(term)
        return float(self.idf[term_id]) if term_id is not None else math.log1p(self.size)

    def expand(self, token: str, *, is_last: bool) -> list[tuple[int, float]]:
        """Vocabulary terms (ids) standing for a query token, each with how well it matches (0-1)."""
        found: dict[int, float] = {}
        exact = self.vocab.get(token)
        if exact is not None:
            found[exact] = 1.0
        if len(token) >= (self.min_prefix if is_last else 4):
            lo = bisect_left(self.sorted_terms, token)
            hi = bisect_left(self.sorted_terms, token + "\uffff", lo)
            ids = self.sorted_ids[lo:hi]
            if len(ids) > PREFIX_TERMS:  # the most frequent completions are the likeliest
                ids = ids[np.argpartition(-self.df[ids], PREFIX_TERMS)[:PREFIX_TERMS]]
            for term_id in ids.tolist():
                found.setdefault(term_id, 0.9 if is_last else 0.8)
        if len(token) >= 4 and exact is None:
            cutoff = 75 if len(token) <= 5 else 78 if len(token) <= 7 else 72
            near: list[tuple[str, float, int]] = []
            for length in range(len(token) - 2, len(token) + 3):  # a fuzz.ratio of 72 or more rules out longer gaps
                bucket = self.by_length.get(length)
                if bucket:
                    near += process.extract(token, bucket, scorer=fuzz.ratio, score_cutoff=cutoff, limit=FUZZY_TERMS)
            near.sort(key=lambda hit: -hit[1])
            best = near[0][1] if near else 0.0
            for term, score, _ in near[:FUZZY_TERMS]:
                if score >= best - 10:  # the closest spellings only: a near-miss of a near-miss is noise
                    term_id = self.vocab[term]
                    found[term_id] = max(found.get(term_id, 0.0), 0.85 * score / 100)
        return list(found.items())

    def _token_gains(self, token: str, is_last: bool) -> tuple[np.ndarray, float] | None:
        """Per document, the best gain of any expansion of `token`, and the token's weight; None for an unknown word.

        Memoised: typing a title asks the same earlier words again at every keystroke.
        """
        key = (token, is_last)
        if key in self._gains:
            return self._gains[key]
        expansions = self.expand(token, is_last=is_last)
        best = np.zeros(self.size, np.float32)
        if len(expansions) == 1:
            ((term_id, quality),) = expansions
            start, end = self.indptr[term_id], self.indptr[term_id + 1]
            best[self.docs[start:end]] = self.weights[start:end] * (quality * self.idf[term_id])
        elif expansions:
            spans = [(self.indptr[t], self.indptr[t + 1], q * self.idf[t]) for t, q in expansions]
            docs = np.concatenate([self.docs[a:b] for a, b, _ in spans])
            gains = np.concatenate([self.weights[a:b] * g for a, b, g in spans])
            np.maximum.at(best, docs, gains)
        result = (best, self.idf_of(token)) if expansions else None
        if len(self._gains) >= GAIN_CACHE_SIZE:
            self._gains.pop(next(iter(self._gains)))
        self._gains[key] = result
        return result

    def shares(self, query: str, *, prefix_last: bool = True) -> np.ndarray | None:
        """Scores 0-100 per document: the share of the query's weight each one matches.

        The best possible is every word in a title; a document covering only part of the query
        is scaled down, so two abstract words can beat one title word.
        """
        words = query.split()
        tokens = [t for t in words if _is_content(t)] or words
        if not tokens:
            return None
        gains = np.zeros(self.size, np.float32)
        covered = np.zeros(self.size, np.float32)
        total = 0.0
        unknown = 0
        for i, token in enumerate(tokens):
            found = self._token_gains(token, prefix_last and i == len(tokens) - 1)
            if found is None:  # a word no talk has, not even nearly: it lowers every score alike
                unknown += 1
                continue
            best, weight = found
            gains += best
            covered += (best > 0) * np.float32(weight)
            total += weight
        if not total:
            return None
        penalty = UNKNOWN_WORD_FACTOR**unknown
        return penalty * 100.0 * gains / (FIELD_WEIGHT[TITLE] * total) * (COVERAGE_FLOOR + (1 - COVERAGE_FLOOR) * covered / total)


def top_k(shares: np.ndarray | None, k: int) -> list[tuple[int, float]]:
    """The k best (doc, share) with share > 0, best first, plus any tied with the k-th (TIE_CAP in all)."""
    if shares is None:
        return []
    docs = np.flatnonzero(shares > 0)
    if len(docs) > k:
        cut = np.partition(shares[docs], len(docs) - k)[len(docs) - k]
        docs = docs[shares[docs] >= cut]
        if len(docs) > TIE_CAP:
            docs = docs[np.argpartition(-shares[docs], TIE_CAP - 1)[:TIE_CAP]]
    order = np.lexsort((docs, -shares[docs]))
    docs = docs[order]
    return list(zip(docs.tolist(), shares[docs].tolist(), strict=True))


BATCH_TALKS = 256
"""Talks whose words are split and sorted together while an index is built (about 60,000 words)."""


def _folded_titles(titles: list[str]) -> list[str]:
    """fold() of each title; plain ASCII titles (most) a thousand at a time, in one pass each."""
    out: list[str] = []
    for lo in range(0, len(titles), 1024):
        give_way()
        some = titles[lo : lo + 1024]
        joined = "\n".join(some)
        if not joined.isascii() or joined.count("\n") != len(some) - 1:
            out += map(fold, some)
            continue
        bulk = [" ".join(line.split()) for line in joined.lower().translate(_ASCII_SPACES_BUT_LINES).split("\n")]  # as fold(), ASCII
        if any(mark in joined for mark in _LATEX_MARKS):  # titles with LaTeX, folded one by one
            bulk = [plain if _plain_ascii(title) else fold(title) for title, plain in zip(some, bulk, strict=True)]
        out += bulk
    return out


_ASCII_SPACES_BUT_LINES = {code: space for code, space in ASCII_SPACES.items() if code != ord("\n")}


def _abstract_words(texts: list[str]) -> tuple[str | bytes, list[int]]:
    """The words of each text as words() finds them, joined by spaces, and the length of each text so joined.

    Plain ASCII (most abstracts) is lowered and cleaned in one pass over the joined texts, which keeps
    each text's length; other texts are folded one by one.
    """
    joined = " ".join(texts)
    if joined.isascii() and not any(mark in joined for mark in _LATEX_MARKS):  # as bytes: lowered and cleaned in one pass
        return joined.encode("ascii").translate(_LOWER_ASCII_SPACE_BYTES), list(map(len, texts))
    return _utf8_field([text.lower().translate(ASCII_SPACES) if _plain_ascii(text) else fold(text) for text in texts])


def _utf8_field(texts: list[str]) -> tuple[bytes, list[int]]:
    """Folded texts joined by a space, as UTF-8 (so their words are looked up by numpy), and the length of each in bytes."""
    joined = " ".join(texts)
    data = joined.encode("utf-8", "surrogatepass")
    return data, list(map(len, texts)) if len(data) == len(joined) else [len(text.encode("utf-8", "surrogatepass")) for text in texts]


_LOWER_ASCII_SPACE_BYTES = bytes(code + 32 if 65 <= code <= 90 else ord(ASCII_SPACES.get(code, chr(code))) if code < 128 else code for code in range(256))


_LATEX_MARKS = ("$", "\\", "``")


def _plain_ascii(text: str) -> bool:
    return text.isascii() and "$" not in text and "\\" not in text and "``" not in text  # as words() and fold() tell LaTeX


def author_key(name: str, folded: str | None = None) -> str:
    """A stable id for a name: its folded words joined by '-', or a digest for a name with no letters at all."""
    key = "-".join((fold(name) if folded is None else folded).split())[:100]
    return key or "author-" + hashlib.blake2b(name.encode(), digest_size=6).hexdigest()


class _NameFolds(dict):
    """fold() of each name, once: a name comes back on every talk its person gives or chairs."""

    def __init__(self) -> None:
        super().__init__()
        self.keys_of = _AuthorKeys(self)

    def __missing__(self, name: str) -> str:
        self[name] = folded = fold(name)
        return folded

    def key(self, name: str) -> str:
        return self.keys_of[name]

    def words(self, names: tuple[str, ...]) -> list[str]:
        """words(" ".join(names)), from each name folded once."""
        return self.text(names).split()

    def text(self, names: tuple[str, ...]) -> str:
        """The words of the names together, joined by spaces."""
        joined = " ".join(names)
        if "$" in joined or "\\" in joined:  # LaTeX may run from one name into the next
            return fold(joined)
        return fold_joined(list(map(self.__getitem__, names)))


class _AuthorKeys(dict):
    """author_key() of each name, once."""

    def __init__(self, folds: _NameFolds) -> None:
        super().__init__()
        self.folds = folds

    def __missing__(self, name: str) -> str:
        self[name] = key = author_key(name, self.folds[name])
        return key


def _is_content(token: str) -> bool:
    return token not in STOPWORDS and (len(token) > 1 or token.isdigit())


def content_words(query: str) -> list[str]:
    """The words of a query that can find something: no stopwords, no lone letters, no punctuation."""
    return [t for t in fold(query).split() if _is_content(t)]


class SearchIndex:
    """Talk and author lookup over one schedule; build once, query many times."""

    def __init__(self, schedule: Schedule) -> None:
        with gc_paused():  # a million long-lived objects at 10,000 talks: see gc_paused
            self._build(schedule)

    def _build(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.talks = schedule.talks
        self._titles = _folded_titles([t.title for t in self.talks])
        self._title_order = sorted(range(len(self._titles)), key=self._titles.__getitem__)
        self._sorted_titles = [self._titles[i] for i in self._title_order]
        names = _NameFolds()
        self._talk_index = TokenIndex.of_texts(self._talk_batches(names))
        self.authors = self._collect_authors(schedule, names)
        self._by_key = {a.key: a for a in self.authors}
        self._author_names = [names[a.name] for a in self.authors]
        # One typed letter already narrows the names to those with a word starting with it.
        everyone = range(len(self._author_names))
        names_field = (AUTHOR, everyone, *_utf8_field(self._author_names))
        self._author_index = TokenIndex.of_texts([(len(everyone), [names_field])], min_prefix=1)

    def _talk_batches(self, names: _NameFolds) -> Iterator[_Batch]:
        """The talks' titles, authors and abstracts, a batch of talks at a time.

        Abstracts are folded a batch at a time and not kept: at 100,000 talks they would double the memory.
        """
        for lo in range(0, len(self.talks), BATCH_TALKS):
            give_way()
            talks = self.talks[lo : lo + BATCH_TALKS]
            docs = range(lo, lo + len(talks))
            titles = self._titles[lo : lo + len(talks)]
            authors = [names.text(t.authors) for t in talks]
            abstracts, lengths = _abstract_words([t.abstract for t in talks])
            yield (
                docs.stop,
                [
                    (TITLE, docs, *_utf8_field(titles)),
                    (AUTHOR, docs, *_utf8_field(authors)),
                    (ABSTRACT, docs, abstracts, lengths),
                ],
            )

    @staticmethod
    def _collect_authors(schedule: Schedule, folds: _NameFolds | None = None) -> list[Author]:
        """Everyone who authors a talk or chairs a session, once each (by folded name), in order of first appearance.

        Each name's key is looked up in C, and talks are grouped by key with numpy (one stable sort),
        not with a Python step per name: a 100,000-talk conference names 430,000 authors.
        """
        folds = _NameFolds() if folds is None else folds
        keys_of = folds.keys_of
        talks, sessions = schedule.talks, schedule.sessions
        authors = list(itertools.chain.from_iterable(t.authors for t in talks))
        chairs = list(itertools.chain.from_iterable(s.chairs for s in sessions))
        give_way()
        keys = list(map(keys_of.__getitem__, authors))
        chair_keys = list(map(keys_of.__getitem__, chairs))
        order = dict.fromkeys(itertools.chain(keys, chair_keys))  # each key once, where it first appears
        firsts = dict(zip(reversed(chair_keys), reversed(chairs), strict=True))
        firsts.update(zip(reversed(keys), reversed(authors), strict=True))  # each key's first spelling: an author's before a chair's
        number = {key: n for n, key in enumerate(order)}
        talks_of = _grouped(list(map(number.__getitem__, keys)), [len(t.authors) for t in talks], talks, len(number))
        chaired = _grouped(list(map(number.__getitem__, chair_keys)), [len(s.chairs) for s in sessions], sessions, len(number))
        return list(map(Author, order, map(firsts.__getitem__, order), talks_of, chaired))

    # ------------------------------------------------------------------ talks

    def find_talks(self, query: str, limit: int = 10, *, prefix_last: bool = True) -> list[Match]:
        """Ranked talks for free text, best first; empty when nothing matches at all."""
        q = fold(query)
        if not q:
            return []
        shares = self._talk_index.shares(q, prefix_last=prefix_last)
        top = top_k(shares, max(limit, 30))
        if not top:
            return []
        ranked = []
        phrase = re.compile(r"\W+".join(map(re.escape, q.split()))) if " " in q else None
        if phrase:  # a title typed from its start is a candidate even when many talks share its words
            shown = {doc for doc, _ in top}
            top += [(d, float(shares[d])) for d in self._titles_starting(q) if d not in shown and shares[d] > 0]
        for doc, score in top:
            # A little title similarity breaks ties between equally good token matches;
            # the words typed as a phrase, in that order, count for more.
            title = self._titles[doc]
            bonus = TITLE_LIKENESS * fuzz.partial_ratio(q, title) / 100 if len(q) > 2 else 0.0
            if phrase and q in title:
                bonus += PHRASE_BONUS + (START_BONUS if title.startswith(q) else 0.0)
            elif phrase and phrase.search(self.talks[doc].abstract.lower()):
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
        return self._by_key.get(author_key(name))

    def find_authors(self, query: str, limit: int = 10) -> list[AuthorMatch]:
        q = fold(query)
        if not q:
            return []
        top = top_k(self._author_index.shares(q), max(limit, 30))
        ranked = []
        for doc, score in top:
            similarity = fuzz.WRatio(q, self._author_names[doc])
            ranked.append((0.8 * score + 0.2 * similarity, doc))
        ranked.sort(key=lambda sd: (-sd[0], self._author_names[sd[1]]))
        return [AuthorMatch(self.authors[doc], round(score, 1)) for score, doc in ranked[:limit] if score >= MIN_SCORE]

    def close_authors(self, query: str, limit: int = 3) -> list[Author]:
        q = fold(query)
        if len(q) == 1:  # a lone letter looks like every name a little: offer names with a word starting with it
            return [m.author for m in self.find_authors(q, limit)]
        hits = process.extract(q, self._author_names, scorer=fuzz.WRatio, limit=limit, score_cutoff=50) if q else []
        return [self.authors[i] for _, _, i in hits]


def _grouped(numbers: list[int], counts: list[int], parts: Sequence, size: int) -> list[tuple]:
    """Per number below `size`, the parts (in order, each once) whose `counts` entries it is among."""
    numbers_ = np.asarray(numbers, np.int64)
    places = np.repeat(np.arange(len(parts)), counts)
    order = np.lexsort((places, numbers_))  # by number, then by part: a name twice on one talk is next to itself
    numbers_, places = numbers_[order], places[order]
    keep = np.ones(len(order), bool)
    keep[1:] = (numbers_[1:] != numbers_[:-1]) | (places[1:] != places[:-1])
    numbers_, places = numbers_[keep], places[keep]
    bounds = np.searchsorted(numbers_, np.arange(size + 1)).tolist()
    objects = np.empty(len(parts), object)
    objects[:] = parts
    picked = objects[places].tolist()
    return [tuple(picked[a:b]) for a, b in itertools.pairwise(bounds)]


def clearly_ahead(scores: Sequence[float]) -> bool:
    """True when the first score leaves the runner-up behind by a clear margin."""
    return len(scores) < 2 or scores[0] - scores[1] >= CLEAR_MARGIN
