"""Tune a recipe on ag7600's *training* split only: never on its eval split.

The 6,000 training rows are split again, within each class, into tune-train (k % 5 != 0,
4,800 rows) and tune-eval (k % 5 == 0, 1,200 rows). Each candidate (a set of --set
overrides on top of an experiment) trains with several seeds; the table shows the mean and
spread of tune-eval accuracy and the training speed. `--folds K` cross-validates instead: per
class, row k of the training split is in fold k % K, and every candidate trains once per fold
and seed (one split of 1,200 rows moved a 0.5-pt difference across its noise). Usage:

    .venv/bin/python bench/tune.py --experiment transformer-tuned --seeds 1 2 3 \\
        --try "" --try "model_params.embed_dim=64" --try "training.epochs=12"
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import tempfile
from pathlib import Path

from benchlib import ROOT, save_result, write_split


def tune_split(train_csv: Path, out_dir: Path) -> tuple[Path, Path]:
    """Split the ag7600 training rows into tune-train / tune-eval (per class, k % 5 == 0 held out)."""
    rows = list(csv.reader(train_csv.open(encoding="utf-8")))
    seen: dict[str, int] = {}
    fit, held = [], []
    for row in rows:
        k = seen.get(row[0], 0)
        seen[row[0]] = k + 1
        (held if k % 5 == 0 else fit).append(row)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "tune_train.csv", out_dir / "tune_eval.csv"
    for path, part in zip(paths, (fit, held)):
        with open(path, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(part)
    (out_dir / "classes.txt").write_text((train_csv.parent / "classes.txt").read_text())
    return paths


def fold_splits(train_csv: Path, out_dir: Path, folds: int) -> list[tuple[Path, Path]]:
    """K-fold cross-validation splits of the ag7600 training rows: per class, row k is in fold k % folds."""
    rows = list(csv.reader(train_csv.open(encoding="utf-8")))
    seen: dict[str, int] = {}
    fold_of = []
    for row in rows:
        k = seen.get(row[0], 0)
        seen[row[0]] = k + 1
        fold_of.append(k % folds)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "classes.txt").write_text((train_csv.parent / "classes.txt").read_text())
    paths = []
    for f in range(folds):
        pair = out_dir / f"fit{f}.csv", out_dir / f"held{f}.csv"
        for path, keep in zip(pair, (lambda g: g != f, lambda g: g == f)):
            with open(path, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
                    r for r, g in zip(rows, fold_of) if keep(g))
        paths.append(pair)
    return paths


def sst2_splits(out_dir: Path, folds: int, held_rows: int = 2000, min_words: int = 12) -> list[tuple[Path, Path]]:
    """Validation splits of SST-2's *training* file that do not leak into the held-out rows.

    SST-2's train.tsv holds every phrase of its sentences, so a random split puts pieces of each
    held-out sentence into training (LinearSVC: 92.7% on such a split, 82.6% on dev). Here the
    held-out rows of fold f are `held_rows` phrases of at least `min_words` words (dev's rows are whole
    sentences), chosen with a fixed seed, and every training phrase that is a word span of one of
    them, or contains one, is dropped from that fold's fit rows.
    """
    import gzip
    import random

    from benchlib import SHARED

    path = SHARED / "data" / "sst2" / "train.tsv.gz"
    if not path.exists():
        raise SystemExit(f"--data sst2 needs {path} (GLUE SST-2 in ../shared); it is not there")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        rows = [(label, text.strip()) for text, label in reader]

    def spans(text: str) -> set[str]:
        w = text.split()
        return {" ".join(w[i:j]) for i in range(len(w)) for j in range(i + 1, len(w) + 1)}

    long_rows = [i for i, (_, text) in enumerate(rows) if len(text.split()) >= min_words]
    random.Random(0).shuffle(long_rows)
    if len(long_rows) < folds * held_rows:
        raise SystemExit(
            f"SST-2 has {len(long_rows)} phrases of >= {min_words} words, fewer than {folds} x {held_rows}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in range(folds):
        held = long_rows[f * held_rows:(f + 1) * held_rows]
        held_set, held_texts = set(held), {rows[i][1] for i in held}
        pieces = set().union(*(spans(rows[i][1]) for i in held))
        fit = [r for i, r in enumerate(rows) if i not in held_set and r[1] not in pieces
               and not (len(r[1].split()) >= min_words and spans(r[1]) & held_texts)]
        pair = out_dir / f"fit{f}.csv", out_dir / f"held{f}.csv"
        for target, part in zip(pair, (fit, [rows[i] for i in held])):
            with open(target, "w", newline="", encoding="utf-8") as fh:
                out = csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n")
                out.writerow(["text", "label"])
                out.writerows((text, label) for label, text in part)
        paths.append(pair)
    return paths


def svc_reference(splits: list[tuple[Path, Path]]) -> float:
    """Mean accuracy of scikit-learn's TF-IDF (word 1-2-grams, sublinear tf) + LinearSVC on the same splits."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    accs = []
    for fit_csv, held_csv in splits:
        fit, held = (list(csv.reader(p.open(encoding="utf-8"))) for p in (fit_csv, held_csv))
        if fit[0] == ["text", "label"]:  # SST-2 splits: headered text,label rows -> label first
            fit, held = ([[r[1], r[0]] for r in part[1:]] for part in (fit, held))
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        svc = LinearSVC(random_state=0).fit(vectorizer.fit_transform([" ".join(r[1:]) for r in fit]),
                                            [r[0] for r in fit])
        predicted = svc.predict(vectorizer.transform([" ".join(r[1:]) for r in held]))
        accs.append(sum(p == r[0] for p, r in zip(predicted, held)) / len(held))
    return statistics.mean(accs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--try", dest="candidates", action="append", default=None,
                        help='space-separated KEY=VALUE overrides ("" = the experiment as it is)')
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--folds", type=int, default=0,
                        help="K-fold cross-validation on the training split (each seed on every fold) instead of "
                             "the one tune-train/tune-eval split")
    parser.add_argument("--data", choices=("ag7600", "sst2"), default="ag7600",
                        help="ag7600's training split, or SST-2's train.tsv split so that no held-out sentence "
                             "leaks into training (with --folds K: K such splits)")
    parser.add_argument("--svc", action="store_true", help="also print TF-IDF + LinearSVC on the same splits")
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "tune.json"))
    args = parser.parse_args()

    import os

    os.environ.setdefault("TEXTCLF_HOME", str(ROOT / "bench" / "out" / "home"))
    from textclf.config import parse_sets
    from textclf.experiments import load_experiments
    from textclf.training import run_training

    if args.data == "sst2":
        splits = sst2_splits(ROOT / "bench" / "out" / "sst2-folds", args.folds or 1)
    else:
        train_csv, _ = write_split(ROOT / "bench" / "out" / "ag7600")
        splits = (fold_splits(train_csv, ROOT / "bench" / "out" / "ag7600-folds", args.folds) if args.folds
                  else [tune_split(train_csv, ROOT / "bench" / "out" / "ag7600-tune")])
    experiments = load_experiments(ROOT / "experiments.yaml")
    if args.svc:
        print(f"{'TF-IDF + LinearSVC (reference)':<60} {100 * svc_reference(splits):6.2f}%", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as runs_root:
        for candidate in args.candidates or [""]:
            sets = parse_sets(shlex.split(candidate))
            accs, speeds = [], []
            for seed in args.seeds:
                for fit_csv, held_csv in splits:
                    config = experiments.resolve(args.experiment, {"data": {"train": f"csv:{fit_csv}",
                                                                            "eval": f"csv:{held_csv}"},
                                                                   "training": {"seed": seed}}, sets)
                    result = run_training(config, runs_root=runs_root)
                    accs.append(result.metrics["accuracy"])
                    speeds.append(result.metrics["train_examples_per_second"])
            row = {"candidate": candidate or "(as is)", "seeds": args.seeds, "accuracies": accs,
                   "mean_accuracy": statistics.mean(accs),
                   "stdev": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                   "train_examples_per_second": statistics.mean(speeds)}
            rows.append(row)
            print(f"{row['candidate']:<60} {100 * row['mean_accuracy']:6.2f}% ± {100 * row['stdev']:.2f} "
                  f"{row['train_examples_per_second']:8,.0f} ex/s  {json.dumps([round(a, 4) for a in accs])}",
                  flush=True)
    where = f"{args.folds}-fold cross-validation of" if args.folds else "tune-train/tune-eval of"
    save_result(args.json, f"tune {args.experiment} on {where} {args.data}'s training split", rows)


if __name__ == "__main__":
    main()
