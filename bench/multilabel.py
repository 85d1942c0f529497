"""Multi-label AG News (agpairs): a real multi-label set built from the shared AG News test split.

Each ag7600 part (train 6,000 / eval 1,600 rows) becomes a JSONL file of the same size: a
seeded half of its rows stay as they are (one label), each of the others is joined with a
second row of a different class drawn from the same part, as one text (`title. description`
of both, in a random order) carrying both classes. So a text has one or two labels, the
second-label texts are two real news items, and no eval text shares a row with a training
text. Then, for several seeds, textclf's default (`--model auto`) and ngram-mlp train on
agpairs train and are evaluated on agpairs eval, next to scikit-learn's one-vs-rest
LinearSVC on TF-IDF words + characters (the first baseline a practitioner tries).

    python bench/multilabel.py [--seeds 3] [--out bench/out/multilabel.json] [--write-docs]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlib import save_result, write_section, write_split

ROOT = Path(__file__).resolve().parents[1]
PAIRED_SHARE = 0.5


def write_agpairs(out_dir: Path, seed: int = 0) -> tuple[Path, Path]:
    """agpairs train.jsonl and eval.jsonl (see the module docstring) from the ag7600 split."""
    split = write_split(out_dir / "ag7600")
    classes = (out_dir / "ag7600" / "classes.txt").read_text(encoding="utf-8").split()
    paths = []
    for name, path in zip(("train", "eval"), split):
        rows = [(classes[int(r[0]) - 1], ". ".join(x.strip() for x in r[1:] if x.strip()))
                for r in csv.reader(path.open(encoding="utf-8"))]
        rng = np.random.default_rng(seed + (name == "eval"))
        labels = np.array([r[0] for r in rows])
        out = out_dir / f"{name}.jsonl"
        with out.open("w", encoding="utf-8") as fh:
            for i, (label, text) in enumerate(rows):
                record = {"text": text, "labels": [label]}
                if rng.random() < PAIRED_SHARE:
                    j = int(rng.choice(np.flatnonzero(labels != label)))
                    first, second = ((label, text), rows[j]) if rng.random() < 0.5 else (rows[j], (label, text))
                    record = {"text": f"{first[1]} {second[1]}", "labels": [first[0], second[0]]}
                fh.write(json.dumps(record) + "\n")
        paths.append(out)
    return paths[0], paths[1]


def linear_svc(train: Path, evaluation: Path) -> dict:
    """One-vs-rest LinearSVC on TF-IDF word 1-2-grams + char_wb 2-5-grams (C=0.3, threshold 0)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_union
    from sklearn.preprocessing import MultiLabelBinarizer
    from sklearn.svm import LinearSVC

    read = lambda p: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
    tr, ev = read(train), read(evaluation)
    binarizer = MultiLabelBinarizer()
    y = binarizer.fit_transform([r["labels"] for r in tr])
    y_eval = binarizer.transform([r["labels"] for r in ev])
    started = time.perf_counter()
    features = make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                          TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))
    x = features.fit_transform([r["text"] for r in tr])
    clf = OneVsRestClassifier(LinearSVC(C=0.3)).fit(x, y)
    predicted = clf.predict(features.transform([r["text"] for r in ev]))
    return {"system": "TF-IDF + one-vs-rest LinearSVC (scikit-learn)", "seed": None,
            "micro_f1": float(f1_score(y_eval, predicted, average="micro")),
            "macro_f1": float(f1_score(y_eval, predicted, average="macro")),
            "subset_accuracy": float((predicted == y_eval).all(axis=1).mean()),
            "wall_seconds": time.perf_counter() - started}


def textclf_run(model: str, seed: int, train: Path, evaluation: Path, runs_root: Path) -> dict:
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "textclf", "train", "--model", model, "--data", f"jsonl:{train}",
           "--eval-data", f"jsonl:{evaluation}", "--label-field", "labels", "--seed", str(seed),
           "--runs-root", str(runs_root)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    from textclf import runs

    latest = runs.resolve_run(None, runs_root)
    m = runs.Run.open(latest).metrics
    return {"system": f"textclf {model}", "seed": seed, "micro_f1": m["micro_f1"], "macro_f1": m["macro_f1"],
            "subset_accuracy": m["accuracy"], "samples_f1": m["samples_f1"], "hamming_loss": m["hamming_loss"],
            "wall_seconds": time.perf_counter() - started, "run": str(latest)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--models", default="auto,ngram-mlp")
    parser.add_argument("--data-dir", default=str(ROOT / "bench" / "out" / "agpairs"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "multilabel.json"))
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    train, evaluation = write_agpairs(Path(args.data_dir))
    rows = [linear_svc(train, evaluation)]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(42, 42 + args.seeds):
            for model in args.models.split(","):
                rows.append(textclf_run(model, seed, train, evaluation, Path(tmp)))
                print(json.dumps(rows[-1]))
    summary = []
    for system in dict.fromkeys(r["system"] for r in rows):
        got = [r for r in rows if r["system"] == system]
        cell = lambda key: (
            f"{100 * np.mean([r[key] for r in got]):.2f} ± {100 * np.std([r[key] for r in got], ddof=1):.2f}"
            if len(got) > 1
            else f"{100 * got[0][key]:.2f}"
        )
        summary.append(f"| {system} | {len(got)} | {cell('micro_f1')} | {cell('macro_f1')} | {cell('subset_accuracy')} "
                       f"| {np.mean([r['wall_seconds'] for r in got]):.1f} |")
    table = "\n".join(["| system | seeds | micro-F1 % | macro-F1 % | subset accuracy % | wall s |",
                       "|---|---|---|---|---|---|", *summary])
    print(table)
    save_result(args.out, "multilabel", rows, table=table)
    if args.write_docs:
        write_section(
            ROOT / "docs" / "BENCHMARKS.md",
            "multilabel",
            "## Multi-label data (`bench/multilabel.py`)\n\n"
            f"Produced by `{' '.join(['python', 'bench/multilabel.py', *sys.argv[1:]])}` "
            f"({time.strftime('%Y-%m-%d %H:%M')}; mean ± sd over seeds "
            f"{', '.join(map(str, range(42, 42 + args.seeds)))}): "
            "agpairs, 6,000 train / 1,600 eval texts from ag7600, half of them two AG News items "
            "of different classes joined and carrying both; scored on agpairs eval at each run's "
            "per-label thresholds (tuned on its validation part). The LinearSVC baseline is "
            "deterministic (one row) and predicts a label where its score is > 0.\n\n"
            f"{table}\n",
        )


if __name__ == "__main__":
    main()
