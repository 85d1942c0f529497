"""Phrase data: training files that hold the phrases of their own sentences, kept together when split.

SST-2's train.tsv is the classic case: 67,349 rows that are every phrase of 6,920 parsed sentences,
each phrase labelled. A row-wise random split puts the pieces of each held-out sentence in the fit
part, so the held-out part is far easier than new text: on SST-2 the default model scores ~93% on
such a validation part and 83% on dev's whole sentences; C, early stopping and the calibration
temperature are then chosen for text the model has all but seen (a temperature fitted there took
the dev ECE from 0.025 to 0.066). Here every text joins the longest text of the data that holds it
as a run of words (case-insensitive) — its sentence — and splits move whole groups.

Ordinary data never pays for the full pass: a sample of SAMPLE texts is looked at first, and only
when at least PHRASE_SHARE of them hold another text of the data as a run of words is the data
treated as phrase data (SST-2: ~90% do; a data set of independent texts: almost none).
Texts of more than MAX_WORDS words are documents, not phrases of a sentence: they are not searched.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SAMPLE = 300  # texts looked at to decide whether the data is phrase data
PHRASE_SHARE = 0.5  # ...and the share of them that must hold another text of the data
MAX_WORDS = 64  # longer texts are not searched for the phrases they hold (quadratic in the words)

_CACHE: list[tuple[np.ndarray, np.ndarray | None]] = []  # (texts, groups) of the last few data sets


def phrase_groups(texts: np.ndarray) -> np.ndarray | None:
    """Each text's group (the row of its longest container, its sentence), or None for data that is not
    phrase data. Exact copies (up to case and spacing) share a group. Cached per texts array."""
    for seen, groups in _CACHE:
        if seen is texts:
            return groups
    groups = _groups(texts)
    _CACHE[:] = [*_CACHE[-3:], (texts, groups)]
    return groups


def _groups(texts: Sequence[str]) -> np.ndarray | None:
    # A document's words are not split past MAX_WORDS + 1: its own group, never searched nor found.
    pieces = [str(t).split(None, MAX_WORDS) for t in texts]
    words = [tuple(p.lower() for p in w) if len(w) <= MAX_WORDS else None for w in pieces]
    del pieces
    first: dict[tuple, int] = {}
    for i, w in enumerate(words):
        if w is not None:
            first.setdefault(w, i)
    searchable = np.flatnonzero([w is not None and len(w) > 1 for w in words])
    if len(searchable) == 0:
        return None
    sample = np.random.default_rng(0).permutation(searchable)[:SAMPLE]
    sizes = {len(w) for w in first}
    holding = sum(any(_held(words[i], first, sizes)) for i in sample)
    if holding < PHRASE_SHARE * len(sample):
        return None
    parent = np.array([i if w is None else first[w] for i, w in enumerate(words)])  # a copy's: the first
    longest = np.zeros(len(words), np.int64)
    for i in searchable:
        if first[words[i]] != i:
            continue
        size = len(words[i])
        for j in _held(words[i], first):
            if size > longest[j]:
                parent[j], longest[j] = i, size
    # Parents are longer texts (or a copy's first): follow each chain to its end, the group's sentence.
    roots = parent.copy()
    for i in np.argsort([-(MAX_WORDS + 1 if w is None else len(w)) for w in words], kind="stable"):
        roots[i] = i if parent[i] == i else roots[parent[i]]
    return roots


def _held(phrase: tuple, first: dict[tuple, int], sizes=None):
    """The rows of the texts that are shorter runs of words of `phrase` (each once); `sizes`: only runs of
    these numbers of words."""
    size, seen = len(phrase), set()
    for n in range(1, size):
        if sizes is not None and n not in sizes:
            continue
        for start in range(size - n + 1):
            j = first.get(phrase[start:start + n])
            if j is not None and j not in seen:
                seen.add(j)
                yield j


def grouped_mask(groups: np.ndarray, strata: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Hold out whole groups, stratified by each group's sentence's stratum, until each stratum's held
    texts reach `fraction` of its texts."""
    held = np.zeros(len(groups), dtype=bool)
    sizes = np.bincount(groups, minlength=len(groups))
    roots = np.flatnonzero(sizes)
    for label in np.unique(strata):
        mine = roots[strata[roots] == label]
        rng.shuffle(mine)
        want = max(1, int(round(np.sum(strata == label) * fraction)))
        taken = np.cumsum(sizes[mine])
        chosen = mine[: int(np.searchsorted(taken, want)) + 1]
        held |= np.isin(groups, chosen)
    return held


def grouped_folds(groups: np.ndarray, strata: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Each text's fold: whole groups, stratified by each group's sentence's stratum, each group dealt
    to the fold with the fewest texts so far (in a seeded order)."""
    sizes = np.bincount(groups, minlength=len(groups))
    roots = np.flatnonzero(sizes)
    filled = np.zeros(folds, np.int64)
    fold_of_root = np.zeros(len(groups), np.int64)
    for label in np.unique(strata[roots]):
        mine = roots[strata[roots] == label]
        rng.shuffle(mine)
        for root in mine:
            k = int(np.argmin(filled))
            fold_of_root[root] = k
            filled[k] += sizes[root]
    return fold_of_root[groups]
