"""Phrase data (SST-2's training file): splits keep each sentence with its phrases (textclf.data.phrases)."""

from __future__ import annotations

import numpy as np

from textclf.data import phrases
from textclf.data.sources import Examples, fold_of, holdout_mask


def _treebank(sentences: int = 60) -> Examples:
    """Every phrase of `sentences` made-up sentences, labelled, in a shuffled order (as SST-2's train.tsv)."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(sentences):
        sentence = [f"w{s}_{k}" for k in range(6)]
        label = s % 2
        rows += [(" ".join(sentence[a:b]), label) for a in range(6) for b in range(a + 1, 7) if b - a < 6 or a == 0]
    order = rng.permutation(len(rows))
    texts = np.array([rows[i][0] for i in order], object)
    return Examples(texts, np.array([rows[i][1] for i in order], np.int32), ("neg", "pos"), "treebank")


def test_each_phrase_joins_its_sentence():
    ex = _treebank()
    groups = phrases.phrase_groups(ex.texts)
    assert groups is not None and len(np.unique(groups)) == 60
    for g in np.unique(groups):  # a group: one sentence (its root, 6 words) and the phrases of it
        members = [ex.texts[i] for i in np.flatnonzero(groups == g)]
        assert ex.texts[g] in members and len(ex.texts[g].split()) == 6
        assert all(m in ex.texts[g] for m in members) and len(members) == 21


def test_holdout_and_folds_move_whole_sentences_and_are_seeded():
    ex = _treebank()
    groups = phrases.phrase_groups(ex.texts)
    held = holdout_mask(ex, 0.2, seed=1)
    assert not set(groups[held]) & set(groups[~held])
    assert 0.15 <= held.mean() <= 0.25 and set(ex.labels[held]) == {0, 1}
    assert (holdout_mask(ex, 0.2, seed=1) == held).all() and not (holdout_mask(ex, 0.2, seed=2) == held).all()
    folds = fold_of(ex, 5, seed=3)
    for k in range(5):
        assert not set(groups[folds == k]) & set(groups[folds != k])
    assert sorted(np.bincount(folds)) == [252] * 5  # 12 sentences of 21 phrases each


def test_ordinary_data_splits_row_by_row():
    texts = np.array([f"headline number {i} about topic {i % 7} and more words" for i in range(200)], object)
    ex = Examples(texts, np.arange(200, dtype=np.int32) % 2, ("a", "b"), "plain")
    assert phrases.phrase_groups(ex.texts) is None
    held = holdout_mask(ex, 0.1, seed=5)
    assert held.sum() == 20  # 10 per class, as the row-wise stratified split always held


def test_copies_share_a_group_and_documents_are_not_searched():
    doc = " ".join(f"d{k}" for k in range(phrases.MAX_WORDS + 5))
    texts = np.array(["a fine film", "fine film", "film", "A  FINE film", "a dull plot", "dull plot", "plot",
                      doc, "d1 d2"], object)
    groups = phrases.phrase_groups(texts)
    assert list(groups[:7]) == [0, 0, 0, 0, 4, 4, 4]
    assert groups[7] == 7 and groups[8] == 8  # the document holds "d1 d2" but is never searched
