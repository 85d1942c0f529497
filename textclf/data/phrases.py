"""Phrase data: training files that hold the phrases of their own sentences, kept together when split.

SST-2's train.tsv is the classic case: 67,349 rows that are every phrase of 6,920 parsed sentences,
each phrase labelled. A row-wise random split puts the pieces of each held-out sentence in the fit
part, so the held-out part is far easier than new text: on SST-2 the default model scores ~93% on
such a validation part and 83% on dev's whole sentences; C, early stopping and the calibration
temperature are then chosen for text the model has all but seen (a temperature fitted there took
the dev ECE from 0.025 to 0.066). Here every text joins the longest text of the data that holds it
as a run of words (case-insensitive) — its sentence — and splits move whole groups.

Ordinary data never pays for the full pass (only for one lower-cased key per text): a sample of
SAMPLE texts is looked at first, and only when at least PHRASE_SHARE of them hold another text of two
words or more of the data as a run of words is the data treated as phrase data (SST-2: ~76% do; a data
set of independent texts: almost none — a one-word text such as "." is held by nearly every text of
any data set, so it does not count). A phrase that two sentences share joins one of them (the first
longest): its other sentence may land on the other side of a split.
Texts of more than MAX_WORDS words are documents, not phrases of a sentence: they are not searched.
"""

from __future__ import annotations

from typing import Callable, Sequence

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
    # Each text as its lower-cased words joined by one space (datastats.normal_text's equality), or None for
    # a document (more than MAX_WORDS words, not split past them): its own group, never searched nor found.
    keys, counts = [], np.zeros(len(texts), np.int64)
    for i, t in enumerate(texts):
        words = str(t).split(None, MAX_WORDS)
        counts[i] = len(words)
        keys.append(" ".join(words).lower() if len(words) <= MAX_WORDS else None)
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key is not None:
            first.setdefault(key, i)
    searchable = np.flatnonzero([key is not None and n > 1 for key, n in zip(keys, counts)])
    if len(searchable) == 0:
        return None
    sizes = {int(counts[i]) for i in first.values()}
    # Phrase data: most sampled texts hold another text of two words or more (one common word or mark,
    # e.g. a lone ".", is held by every text of any data set).
    sample = np.random.default_rng(0).permutation(searchable)[:SAMPLE]
    holding = sum(any(True for _ in _held(keys[i].split(" "), first, sizes - {1}, " ".join)) for i in sample)
    if holding < PHRASE_SHARE * len(sample):
        return None
    parent = [i if key is None else first[key] for i, key in enumerate(keys)]  # a copy's: the first
    longest = [0] * len(keys)
    # The full pass looks up runs of words as tuples (slicing beats joining strings ~3x on SST-2)
    by_words = {tuple(key.split(" ")): i for key, i in first.items()}
    for i in searchable.tolist():
        if first[keys[i]] != i:
            continue
        size = int(counts[i])
        for j in _held(tuple(keys[i].split(" ")), by_words, sizes, tuple):
            if size > longest[j]:
                parent[j], longest[j] = i, size
    # Parents are longer texts (or a copy's first): follow each chain to its end, the group's sentence.
    parent = np.array(parent)
    roots = parent.copy()
    for i in np.argsort(-np.where([key is None for key in keys], MAX_WORDS + 1, counts), kind="stable"):
        roots[i] = i if parent[i] == i else roots[parent[i]]
    return roots


def _held(words: Sequence[str], rows: dict, sizes: set[int], key: Callable):
    """The rows of the texts that are shorter runs of `words` (each once), of `sizes` words; `rows` maps
    `key(run of words)` to a row (the detection's keys are joined strings, the full pass's tuples)."""
    size, seen = len(words), set()
    for n in range(1, size):
        if n not in sizes:
            continue
        for start in range(size - n + 1):
            j = rows.get(key(words[start:start + n]))
            if j is not None and j not in seen:
                seen.add(j)
                yield j


def grouped_mask(groups: np.ndarray, strata: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Hold out whole groups, stratified by each group's sentence's stratum: in a seeded order, the first
    groups whose texts come closest to `fraction` of the stratum's texts — at least one, but never every
    group of a stratum (a stratum of one sentence stays whole in the fit part)."""
    held = np.zeros(len(groups), dtype=bool)
    sizes = np.bincount(groups, minlength=len(groups))
    roots = np.flatnonzero(sizes)
    for label in np.unique(strata):
        mine = roots[strata[roots] == label]
        if not len(mine):
            continue
        rng.shuffle(mine)
        want = np.sum(strata == label) * fraction
        taken = np.cumsum(sizes[mine])
        count = min(int(np.argmin(np.abs(taken - want))) + 1, len(mine) - 1)
        held |= np.isin(groups, mine[:count])
    return held


def grouped_folds(groups: np.ndarray, strata: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Each text's fold: whole groups, stratified by each group's sentence's stratum, each group dealt
    to the fold with the fewest texts so far (in a seeded order)."""
    sizes = np.bincount(groups, minlength=len(groups))
    roots = np.flatnonzero(sizes)
    if len(roots) < folds:
        from textclf.errors import DataError

        raise DataError(f"the data's {len(groups):,} texts are the phrases of {len(roots):,} sentences (phrase data "
                        f"is split by sentence), too few to make {folds} folds")
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
