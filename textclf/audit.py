"""`textclf data audit`: which labels of a data set are likely wrong, from out-of-fold predictions.

1. Out-of-fold probabilities: K folds (stratified, seeded: data.folds' split) of a model — the default
   (ngram-linear, seconds) or any model or experiment — each trained on the other folds (in a temporary
   runs folder, as `textclf train --folds K` trains them, calibrated where they have a validation part)
   and answering its own fold.
2. Label issues by confident learning (Northcutt et al. 2021), with cleanlab (the authors' maintained
   implementation): its confident joint estimates how many labels are wrong (the noise rate), and the
   texts are ranked by self-confidence (the out-of-fold probability of the given label), lowest first.
   How many to flag: each text's chance that its label is wrong follows from its self-confidence p and
   the noise rate e, a wrong label being any other of the K classes alike — e/(K-1)·(1-p) against
   (1-e)·p — and the flagged head of the ranking is the one of highest expected F1 (as many found as
   possible, as few flagged wrongly). On ag7600 with 5% planted flips that flags ~310 texts for 300
   planted: 63.6% precision at 65.7% recall, where cleanlab's own count (~430, with low_self_confidence)
   flagged 55% at 80% (bench/audit.py). The suggested label is the out-of-fold prediction. Multi-label
   data: cleanlab's find_label_issues (multi_label, low_self_confidence), per label.
3. Texts that are the same up to case and spacing but carry different labels (each one's labels
   listed), and outliers: the texts cleanlab's out-of-distribution score (from the same probabilities)
   ranks lowest, at most OUTLIER_SHARE of the data.

It never edits the data: a table, and CSV or JSON rows (row number in the data, text, given label,
suggested label, score, kind).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

OUTLIER_SHARE = 0.005  # at most this share of the texts is flagged as outliers (and at most MAX_OUTLIERS)
MAX_OUTLIERS = 50
FILTER = "low_self_confidence"  # multi-label: cleanlab's filter_by (its estimated count, lowest self-confidence first)


@dataclass
class Audit:
    """What the audit found: `rows` (dicts: row, text, given, suggested, score, kind), most suspect first."""

    data: str
    examples: int
    model: str
    folds: int
    rows: list[dict] = field(default_factory=list)
    oof_accuracy: float = 0.0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        kinds = [r["kind"] for r in self.rows]
        return {k: kinds.count(k) for k in ("label_issue", "conflicting_duplicate", "outlier")}

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "examples": self.examples, "model": self.model, "folds": self.folds,
                "out_of_fold_accuracy": self.oof_accuracy, "seconds": self.seconds, "flagged": self.counts(),
                "rows": self.rows}


def audit(config, *, folds: int = 5, say: Callable[[str], None] = lambda line: None) -> Audit:
    """Audit the training data of `config` (a RunConfig: its model, data and training settings) with `folds`
    out-of-fold models."""
    from textclf.data.sources import load_training

    started = time.perf_counter()
    examples = load_training(config.data)
    probs = out_of_fold(config, examples, folds, say)
    say("ranking likely label errors (cleanlab)")
    found = Audit(examples.source, len(examples), config.model, folds)
    found.rows = _label_issues(examples, probs) + _conflicts(examples) + _outliers(examples, probs)
    predicted = _answers(probs, examples.labels.ndim == 2)
    right = (predicted == examples.labels).all(axis=1) if predicted.ndim == 2 else predicted == examples.labels
    found.oof_accuracy = float(right.mean())  # multi-label: subset accuracy (every label right)
    found.seconds = time.perf_counter() - started
    return found


def _no_eval(config, folds: int):
    """The config of the fold runs: every text of the training data in some fold, no eval data."""
    import dataclasses

    return dataclasses.replace(config, data=dataclasses.replace(config.data, eval=None, folds=folds, fold=None),
                               training=dataclasses.replace(config.training, seeds=1))


def out_of_fold(config, examples, folds: int, say) -> np.ndarray:
    """Each text's probabilities from the fold model that did not train on it."""
    from textclf.data.sources import fold_of
    from textclf.evaluation import eval_examples
    from textclf.prediction import Predictor
    from textclf.training import train

    fold = fold_of(examples, folds, config.data.split_seed if config.data.split_seed is not None
                   else config.training.seed)
    probs = None
    with tempfile.TemporaryDirectory(prefix="textclf-audit-") as root:
        say(f"training {folds} {config.model} models, each on {folds - 1} folds")
        group = train(_no_eval(config, folds), runs_root=root)
        for k, result in enumerate(sorted(group.results, key=lambda r: _fold_index(r.run_dir))):
            say(f"predicting fold {k + 1} of {folds}")
            held = eval_examples(result.run_dir)
            answered = Predictor(result.run_dir, use_twin=True).probabilities(held.texts)
            if probs is None:
                probs = np.zeros((len(examples), answered.shape[1]), np.float32)
            index = np.flatnonzero(fold == k)
            if len(index) != len(answered):
                raise RuntimeError(f"fold {k + 1}: {len(answered)} answers for {len(index)} texts")
            probs[index] = answered
    return probs


def _answers(probs: np.ndarray, multilabel: bool) -> np.ndarray:
    """The out-of-fold models' answers (task.decide; multi-label: every label at 0.5 or above)."""
    from textclf import task

    return task.decide(probs, np.full(probs.shape[1], 0.5) if multilabel else None)


def _fold_index(run_dir) -> int:
    from textclf.runs import Run

    return int(Run(run_dir).config["data"]["fold"])


def _label_issues(examples, probs: np.ndarray) -> list[dict]:
    names = list(examples.label_names)
    if examples.labels.ndim == 2:
        constant = [names[j] for j in range(len(names)) if examples.labels[:, j].min() == examples.labels[:, j].max()]
        if constant:
            from textclf.errors import DataError

            raise DataError(f"{examples.source}: label {constant[0]!r} is on every text or on none; the audit "
                            "compares each label's texts with the others (drop that label)")
        from cleanlab.multilabel_classification.rank import get_label_quality_scores
        from cleanlab.filter import find_label_issues

        given = [list(np.flatnonzero(row)) for row in examples.labels]
        issues = find_label_issues(labels=given, pred_probs=probs, multi_label=True, filter_by=FILTER)
        scores = get_label_quality_scores(given, probs)
        answers = _answers(probs, True)
        suggest = lambda i: "|".join(names[j] for j in np.flatnonzero(answers[i]))  # noqa: E731
        show = lambda i: "|".join(names[j] for j in given[i])  # noqa: E731
    else:
        from cleanlab.rank import get_label_quality_scores

        scores = get_label_quality_scores(examples.labels, probs)  # self-confidence (cleanlab's default)
        answers = _answers(probs, False)
        issues = best_expected_f1(scores, noise_rate(examples.labels, probs), probs.shape[1],
                                  candidates=answers != examples.labels)
        suggest = lambda i: names[int(answers[i])]  # noqa: E731
        show = lambda i: names[int(examples.labels[i])]  # noqa: E731
    # a flagged row its out-of-fold model agrees with is not a suspect label
    flagged = sorted((i for i in np.flatnonzero(issues) if suggest(i) != show(i)), key=lambda i: scores[i])
    return [{"row": int(i) + 1, "text": str(examples.texts[i]), "given": show(i), "suggested": suggest(i),
             "score": float(scores[i]), "kind": "label_issue"} for i in flagged]


def noise_rate(labels: np.ndarray, probs: np.ndarray) -> float:
    """The share of wrong labels cleanlab's confident joint estimates (its count of label issues / texts)."""
    from cleanlab.count import num_label_issues

    return float(num_label_issues(labels=labels, pred_probs=probs)) / max(len(labels), 1)


def wrong_chance(self_confidence: np.ndarray, noise: float, classes: int) -> np.ndarray:
    """Each text's chance that its label is wrong, from its self-confidence p (the out-of-fold probability of
    its given label) and the noise rate e, a wrong label being any other class alike:
    e/(K-1)·(1-p) / ((1-e)·p + e/(K-1)·(1-p)). e is taken at most 0.5: more than half the labels wrong is
    beyond what an audit of the labels against a model trained on them can tell."""
    p = np.clip(np.asarray(self_confidence, np.float64), 0.0, 1.0)
    e = min(max(noise, 0.0), 0.5)
    flipped = e / max(classes - 1, 1) * (1 - p)
    return np.divide(flipped, (1 - e) * p + flipped, out=np.zeros_like(p), where=flipped > 0)


def best_expected_f1(self_confidence: np.ndarray, noise: float, classes: int,
                     candidates: np.ndarray | None = None) -> np.ndarray:
    """Which texts to flag (a boolean mask): of the `candidates` (default: all; the audit's are the texts its
    out-of-fold model answers otherwise), the lowest-self-confidence head whose expected F1 — 2 × its
    expected wrong labels / (its size + the expected wrong labels of all texts) — is highest. None when
    the noise rate is 0 (cleanlab estimates no wrong label); else at least one."""
    chance = wrong_chance(self_confidence, noise, classes)
    flagged = np.zeros(len(chance), dtype=bool)
    pool = np.flatnonzero(candidates) if candidates is not None else np.arange(len(chance))
    if not len(pool) or chance[pool].sum() <= 0:
        return flagged
    order = pool[np.argsort(-chance[pool], kind="stable")]
    found = np.cumsum(chance[order])
    f1 = 2 * found / (np.arange(1, len(order) + 1) + chance.sum())
    flagged[order[: int(np.argmax(f1)) + 1]] = True
    return flagged


def _conflicts(examples) -> list[dict]:
    """Texts equal up to case and spacing whose labels differ: every copy, its own labels."""
    from textclf.datastats import normal_text

    groups: dict[str, list[int]] = {}
    for i, text in enumerate(examples.texts):
        groups.setdefault(normal_text(text), []).append(i)
    sets = examples.label_sets()
    rows = []
    for members in groups.values():
        labels = {"|".join(sets[i]) for i in members}
        if len(members) > 1 and len(labels) > 1:
            others = " / ".join(sorted(labels))
            rows += [{"row": i + 1, "text": str(examples.texts[i]), "given": "|".join(sets[i]), "suggested": others,
                      "score": 0.0, "kind": "conflicting_duplicate"} for i in members]
    return rows


def _outliers(examples, probs: np.ndarray) -> list[dict]:
    """The texts the out-of-fold model recognises least (cleanlab's OutOfDistribution on probabilities)."""
    if examples.labels.ndim == 2 or len(examples) < 2 * len(examples.label_names):
        return []
    from cleanlab.outlier import OutOfDistribution

    scores = OutOfDistribution().fit_score(pred_probs=probs, labels=examples.labels, verbose=False)
    k = min(MAX_OUTLIERS, int(len(examples) * OUTLIER_SHARE))
    names, answers = list(examples.label_names), _answers(probs, False)
    return [{"row": int(i) + 1, "text": str(examples.texts[i]), "given": names[int(examples.labels[i])],
             "suggested": names[int(answers[i])], "score": float(scores[i]), "kind": "outlier"}
            for i in np.argsort(scores, kind="stable")[:k]]


OUTPUTS = (".csv", ".json")


def check_output(path: str):
    """The audit's output file: .csv or .json, in a writable folder (checked before any work)."""
    from textclf.reports import check_output_path

    return check_output_path(path, OUTPUTS, "--out", "the flagged rows as CSV or JSON")


def write_rows(path, rows: list[dict]) -> None:
    """The flagged rows as CSV (columns row, kind, given, suggested, score, text) or JSON, atomically."""
    import csv
    import io
    import json
    from pathlib import Path

    from textclf.runs import write_output

    if Path(path).suffix.lower() == ".json":
        data = json.dumps({"rows": rows}, ensure_ascii=False, indent=1).encode("utf-8")
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=["row", "kind", "given", "suggested", "score", "text"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        data = buffer.getvalue().encode("utf-8")
    write_output(path, data)
