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


def _row_wise(ex: Examples, fraction: float, seed: int) -> np.ndarray:
    """The stratified row-wise split as textclf drew it before phrase data was known."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(ex), dtype=bool)
    for label in np.unique(ex.strata):
        idx = np.flatnonzero(ex.strata == label)
        rng.shuffle(idx)
        held[idx[: max(1, int(round(len(idx) * fraction)))]] = True
    return held


def test_ordinary_data_splits_row_by_row_as_before_even_with_a_common_short_row():
    rng = np.random.default_rng(2)
    words = [f"w{k}" for k in range(500)]
    texts = [" ".join(rng.choice(words, 12)) + " ." for _ in range(400)] + [".", "w1", "the end"]
    ex = Examples(np.array(texts, object), np.arange(403, dtype=np.int32) % 3, ("a", "b", "c"), "plain")
    # "." is inside every text (and "w1" in some): one-word texts do not make phrase data
    assert phrases.phrase_groups(ex.texts) is None
    for seed in (1, 5):
        assert (holdout_mask(ex, 0.1, seed) == _row_wise(ex, 0.1, seed)).all()
    folds = fold_of(ex, 5, seed=3)
    assert sorted(np.bincount(folds)) == [80, 80, 81, 81, 81]


def test_few_sentences_are_refused_for_folds_and_no_class_is_held_out_whole():
    from textclf.errors import DataError

    ex = _treebank(3)
    try:
        fold_of(ex, 5, seed=1)
    except DataError as err:
        assert "phrases of 3 sentences" in str(err) and "5 folds" in str(err)
    else:
        raise AssertionError("5 folds of 3 sentences were made")
    for seed in range(6):  # label 1 has a single sentence here, label 0 two: neither is held out whole
        held = holdout_mask(ex, 0.1, seed)
        assert set(ex.labels[~held]) == {0, 1}
        for label in (0, 1):
            assert held[ex.labels == label].mean() < 1


def test_a_run_evaluates_only_on_the_eval_data_it_recorded(tmp_path):
    from conftest import ag_split, assert_one_line_error, cli

    train, evaluation = ag_split(tmp_path, 30, 10)
    done = cli("train", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--runs-root", tmp_path / "r")
    assert done.exit_code == 0, done.output
    run = tmp_path / "r" / "latest"
    assert cli("evaluate", run).exit_code == 0
    rows = evaluation.read_text().splitlines()
    evaluation.write_text("\n".join(rows[1:]) + "\n")  # the eval file changed since
    assert_one_line_error(cli("evaluate", run), "eval data is not what it was evaluated on", "--data")
    assert cli("evaluate", run, "--data", f"csv:{evaluation}").exit_code == 0


def test_copies_share_a_group_and_documents_are_not_searched():
    doc = " ".join(f"d{k}" for k in range(phrases.MAX_WORDS + 5))
    texts = np.array(["a fine film", "fine film", "film", "A  FINE film", "a dull plot", "dull plot", "plot",
                      doc, "d1 d2"], object)
    groups = phrases.phrase_groups(texts)
    assert list(groups[:7]) == [0, 0, 0, 0, 4, 4, 4]
    assert groups[7] == 7 and groups[8] == 8  # the document holds "d1 d2" but is never searched


def _sure_on_phrases(ex: Examples, rng) -> np.ndarray:
    """Probabilities 0.95 on an answer that is right on every phrase and on 70% of the sentences (as a model
    of SST-2 is far surer of the pieces than of whole sentences)."""
    groups = phrases.phrase_groups(ex.texts)
    sentences = np.flatnonzero(groups == np.arange(len(ex)))
    answer = ex.labels.copy()
    wrong = rng.permutation(sentences)[: int(0.3 * len(sentences))]
    answer[wrong] = 1 - answer[wrong]
    probs = np.full((len(ex), 2), 0.05)
    probs[np.arange(len(ex)), answer] = 0.95
    return probs


def test_phrase_data_fits_its_temperature_on_the_sentences_only():
    from textclf import calibration
    from textclf.training.calibrate import calibrate
    from textclf.training.hooks import _Hooks

    notes = []
    hooks = _Hooks(type("Listener", (), {"on_note": lambda self, line: notes.append(line)})())
    rng = np.random.default_rng(0)
    train = _treebank(240)  # 5,040 texts: 240 sentences and their phrases; half held out, by sentence
    held = holdout_mask(train, 0.5, seed=1)
    validation = train.subset(held, "validation")
    probs = _sure_on_phrases(train, rng)[held]
    sentences = np.flatnonzero([len(t.split()) == 6 for t in validation.texts])
    assert len(sentences) == 120
    evaluation = validation.subset(sentences, "dev")  # sentences only, as SST-2's dev set
    temperature, _, _, measured = calibrate("temperature", probs, validation, probs[sentences], evaluation, hooks,
                                            train=train)
    assert temperature == calibration.fit_temperature(probs[sentences], validation.labels[sentences])
    assert temperature > 1.5 > calibration.fit_temperature(probs, validation.labels)  # the mix: kept sharp
    assert measured["calibration"]["fitted_examples"] == 120 and "120 sentences of the 2520" in notes[-1]
    assert measured["ece"] < measured["calibration"]["before"]["ece"] / 2
    # Fewer than 100 sentences: every validation text
    few = _treebank(60)
    few_probs = _sure_on_phrases(few, rng)
    _, _, _, measured = calibrate("temperature", few_probs, few, few_probs, few, hooks, train=few)
    assert measured["calibration"]["fitted_examples"] == len(few) == 1260 and "1260 validation texts" in notes[-1]
    # Ordinary data: every validation text
    labels = rng.integers(0, 2, 300).astype(np.int32)
    ordinary = Examples(np.array([f"text {i} of its own" for i in range(300)], object), labels, ("neg", "pos"),
                        "plain")
    plain = np.where(rng.random(300) < 0.8, labels, 1 - labels)
    plain_probs = np.full((300, 2), 0.05)
    plain_probs[np.arange(300), plain] = 0.95
    _, _, _, measured = calibrate("temperature", plain_probs, ordinary, plain_probs, ordinary, hooks, train=ordinary)
    assert measured["calibration"]["fitted_examples"] == 300 and "300 validation texts" in notes[-1]
