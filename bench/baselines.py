"""textclf's default and its models next to TF-IDF + LinearSVC, on ag7600 and SST-2, in one invocation.

Every row is a child process started as a user would start it (`textclf train …` with only
the data flags and a seed; the SVC side is ten lines of scikit-learn on the same examples),
so "wall s" includes imports. Each row runs with several seeds, the rows of one seed one
after another (so a drift in machine speed hits all alike); accuracy and macro-F1 are
mean ± sd over the seeds, seconds are medians. Writes JSON and the `baselines` section of
docs/BENCHMARKS.md.

    .venv/bin/python bench/baselines.py                 # both data sets, seeds 1 2 3 (~25 min)
    .venv/bin/python bench/baselines.py --datasets ag7600 --seeds 1 --models auto,ngram-mlp
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, SHARED, run_child, write_section, write_split

HERE = Path(__file__).resolve().parent
TEXTCLF = Path(sys.executable).parent / "textclf"
MODELS = ("auto", "ngram-linear", "ngram-mlp", "transformer")
SVC = "tfidf-linearsvc"

# scikit-learn's TF-IDF of word 1-2-grams (sublinear tf) + LinearSVC: the first baseline
# practitioners try. Reads the examples with textclf's own reader, so both sides see the same rows.
SVC_CODE = r"""
import json, sys, time
started = time.perf_counter()
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import LinearSVC
from textclf.config import DataConfig
from textclf.data.sources import load_train_eval
train_spec, eval_spec, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
train, evaluation = load_train_eval(DataConfig(train=train_spec, eval=eval_spec), seed)
fit_started = time.perf_counter()
vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
svc = LinearSVC(random_state=seed).fit(vectorizer.fit_transform(list(train.texts)), train.labels)
train_seconds = time.perf_counter() - fit_started
predicted = svc.predict(vectorizer.transform(list(evaluation.texts)))
json.dump({"accuracy": accuracy_score(evaluation.labels, predicted),
           "macro_f1": f1_score(evaluation.labels, predicted, average="macro"),
           "train_seconds": train_seconds, "train_examples": len(train)}, open(out, "w"))
"""


def datasets(names: list[str]) -> dict[str, tuple[str, str]]:
    """name -> (train spec, eval spec); each needs ../shared."""
    found = {}
    for name in names:
        if name == "ag7600":
            train_csv, eval_csv = write_split(ROOT / "bench" / "out" / "ag7600")
            found[name] = (f"csv:{train_csv}", f"csv:{eval_csv}")
        elif name == "sst2":
            train, dev = SHARED / "data" / "sst2" / "train.tsv.gz", SHARED / "data" / "sst2" / "dev.tsv"
            if not train.exists():
                raise SystemExit(f"sst2 needs {train} (GLUE SST-2 in ../shared); it is not there")
            found[name] = (f"tsv:{train}", f"tsv:{dev}")
        elif name == "ag7600-long":  # long documents: each ag7600 text followed by nine others of its class
            from lengths import long_split

            train_csv, eval_csv = write_split(ROOT / "bench" / "out" / "ag7600")
            out = ROOT / "bench" / "out" / "ag7600-long"
            found[name] = (f"csv:{long_split(train_csv, out / 'train.csv')}",
                           f"csv:{long_split(eval_csv, out / 'eval.csv', seed=1)}")
        elif name == "ag7600-huge":  # ag7600 plus four training texts of ~100k words (2,500 articles of a class)
            found[name] = huge_split(*write_split(ROOT / "bench" / "out" / "ag7600"), ROOT / "bench" / "out" / name)
        elif name == "ag20":  # 20 classes: three ag7600 texts joined, labelled by the multiset of their classes
            found[name] = triples_split(*write_split(ROOT / "bench" / "out" / "ag7600"), ROOT / "bench" / "out" / name)
        elif name == "sst2x10":  # 673k rows: SST-2's training file ten times, copies 1-9 perturbed (bench/scale.py)
            from scale import write_repeated

            sst2 = SHARED / "data" / "sst2"
            if not (sst2 / "train.tsv.gz").exists():
                raise SystemExit(f"sst2x10 needs {sst2 / 'train.tsv.gz'} (GLUE SST-2 in ../shared); it is not there")
            found[name] = (f"tsv:{write_repeated(sst2 / 'train.tsv.gz', ROOT / 'bench' / 'out' / 'sst2-x10.tsv')}",
                           f"tsv:{sst2 / 'dev.tsv'}")
        else:
            raise SystemExit(f"unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    return found


DATASETS = ("ag7600", "sst2", "ag7600-long", "ag7600-huge", "ag20", "sst2x10")


def _rows(path: Path) -> list[list[str]]:
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def _write(rows: list[list[str]], path: Path, classes: list[str]) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    (path.parent / "classes.txt").write_text("\n".join(classes) + "\n")
    return path


def huge_split(train_csv: Path, eval_csv: Path, out: Path, texts: int = 4, per_text: int = 2500) -> tuple[str, str]:
    """ag7600's training rows plus `texts` rows of `per_text` same-class articles each (~100k words)."""
    import random

    rows = _rows(train_csv)
    rng = random.Random(0)
    by_class: dict[str, list[list[str]]] = {}
    for row in rows:
        by_class.setdefault(row[0], []).append(row)
    labels = sorted(by_class)
    extra = []
    for i in range(texts):
        label = labels[i % len(labels)]
        picked = rng.choices(by_class[label], k=per_text)
        extra.append([label, "a very long text", " ".join(f"{r[1]}. {r[2]}" for r in picked)])
    classes = (train_csv.parent / "classes.txt").read_text().split()
    return f"csv:{_write(rows + extra, out / 'train.csv', classes)}", f"csv:{eval_csv}"


def triples_split(train_csv: Path, eval_csv: Path, out: Path) -> tuple[str, str]:
    """Each row three articles of the same split joined; its label the multiset of their classes: 20 classes."""
    import itertools
    import random

    names = (train_csv.parent / "classes.txt").read_text().split("\n")
    names = [n for n in names if n]
    combos = list(itertools.combinations_with_replacement(range(len(names)), 3))
    classes = ["+".join(names[i] for i in c) for c in combos]
    paths = []
    for split, path in (("train", train_csv), ("eval", eval_csv)):
        rows = _rows(path)
        rng = random.Random(split)
        by_class: dict[int, list[list[str]]] = {}
        for row in rows:
            by_class.setdefault(int(row[0]) - 1, []).append(row)
        made = []
        for k in range(len(rows)):
            combo = combos[k % len(combos)]
            parts = [rng.choice(by_class[c]) for c in combo]
            rng.shuffle(parts)
            made.append([str(combos.index(combo) + 1), parts[0][1], " ".join(f"{p[2]} {p[1]}. " for p in parts)])
        paths.append(_write(made, out / f"{split}.csv", classes))
    return f"csv:{paths[0]}", f"csv:{paths[1]}"


def run_textclf(model: str, train: str, evaluation: str, seed: int, tmp: Path, quiet: bool) -> dict:
    runs_root = tmp / f"runs-{model}-{seed}"
    cmd = [str(TEXTCLF), "train", "--data", train, "--eval-data", evaluation, "--seed", str(seed),
           "--runs-root", str(runs_root)] + ([] if model == "auto" else ["--model", model])
    child = run_child(cmd, quiet)
    wall, rss, code = child["wall_seconds"], child["peak_rss_mb"], child["code"]
    if code != 0:
        return {"error": f"exit {code}: {' '.join(cmd)}"}
    run = runs_root / "latest"
    from textclf.runs import Run

    metrics, config = Run(run).metrics, Run(run).config
    return {
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "train_seconds": metrics["train_seconds"],
        "train_examples_per_second": metrics["train_examples_per_second"],
        "epochs_run": metrics["epochs_run"],
        "wall_seconds": wall,
        "peak_rss_mb": rss,
        "model": config["model"],
        "selection": (config.get("selection") or {}).get("reason"),
        "max_length": (config.get("model_params") or {}).get("max_length"),
    }


def run_svc(train: str, evaluation: str, seed: int, tmp: Path, quiet: bool) -> dict:
    out = tmp / f"svc-{seed}.json"
    child = run_child([sys.executable, "-c", SVC_CODE, train, evaluation, str(seed), str(out)], quiet)
    wall, rss, code = child["wall_seconds"], child["peak_rss_mb"], child["code"]
    if code != 0:
        return {"error": f"exit {code}: scikit-learn baseline"}
    row = json.loads(out.read_text())
    row["train_examples_per_second"] = row["train_examples"] / row["train_seconds"]
    return {**row, "wall_seconds": wall, "peak_rss_mb": rss, "model": SVC}


def combine(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0]["error"]}
    mean = lambda k: statistics.mean(r[k] for r in ok)
    sd = lambda k: statistics.stdev(r[k] for r in ok) if len(ok) > 1 else 0.0
    med = lambda k: statistics.median(r[k] for r in ok)
    return {"accuracy": mean("accuracy"), "accuracy_sd": sd("accuracy"), "macro_f1": mean("macro_f1"),
            "macro_f1_sd": sd("macro_f1"), "accuracies": [r["accuracy"] for r in ok],
            "train_seconds": med("train_seconds"), "wall_seconds": med("wall_seconds"),
            "train_examples_per_second": med("train_examples_per_second"),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok), "model": ok[0]["model"],
            "selection": ok[0].get("selection"), "max_length": ok[0].get("max_length"),
            "failed_seeds": len(runs) - len(ok)}


def verdicts(rows: dict[str, dict]) -> list[str]:
    svc = rows.get(SVC, {})
    if "accuracy" not in svc:
        return []
    out = []
    for name, row in rows.items():
        if name == SVC or "accuracy" not in row:
            continue
        gap = 100 * (row["accuracy"] - svc["accuracy"])
        if name == "auto":
            target, met = "≥ TF-IDF+LinearSVC", gap >= 0
        elif name.startswith("ngram"):
            target, met = "within 1 pt of TF-IDF+LinearSVC", gap >= -1
        else:
            continue
        out.append(f"{name}: {gap:+.2f} pt vs TF-IDF+LinearSVC (target {target}: {'met' if met else 'MISSED'})")
    return out


def markdown(result: dict) -> str:
    lines = ["## Baselines: textclf's default vs TF-IDF + LinearSVC", "",
             "Produced by one command; every number below was measured by it:", "",
             f"    {result['command']}", "",
             f"Machine: {result['machine']}, {result['date']}. Seeds {', '.join(map(str, result['seeds']))}: "
             "accuracy and macro-F1 are mean ± sd over the seeds, seconds and ex/s medians. "
             "`auto` is `textclf train` with only the data flags (`--model auto`, the default). "
             "wall s is the whole command, imports included.", ""]
    for name, ds in result["datasets"].items():
        lines += [f"### {name}", "", f"train `{ds['train']}`, eval `{ds['eval']}`", "",
                  "| model | eval acc | macro-F1 | train s | train ex/s | wall s | peak RSS MB | note |",
                  "|---|---|---|---|---|---|---|---|"]
        for label, r in ds["rows"].items():
            if "error" in r:
                lines.append(f"| {label} | failed | | | | | | {r['error']} |")
                continue
            note = r.get("selection") or (f"max_length {r['max_length']}" if r.get("max_length") else "")
            lines.append(f"| {label} | {100 * r['accuracy']:.2f}% ± {100 * r['accuracy_sd']:.2f} | "
                         f"{100 * r['macro_f1']:.2f}% ± {100 * r['macro_f1_sd']:.2f} | {r['train_seconds']:.1f} | "
                         f"{r['train_examples_per_second']:,.0f} | {r['wall_seconds']:.1f} | {r['peak_rss_mb']:,.0f} | "
                         f"{note} |")
        lines += [""] + [f"- {v}" for v in ds["verdicts"]] + [""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ag7600,sst2")
    parser.add_argument("--models", default=",".join(MODELS), help=f"textclf models ({', '.join(MODELS)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "baselines.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--quiet", action="store_true", help="hide the children's output")
    args = parser.parse_args()
    os.environ.setdefault("TEXTCLF_HOME", str(ROOT / "bench" / "out" / "home"))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    started = time.strftime("%Y-%m-%d %H:%M")
    result = {"command": "python bench/baselines.py " + " ".join(sys.argv[1:]), "seeds": args.seeds,
              "date": started, "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
              "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="textclf-baselines-") as tmp:
        tmp = Path(tmp)
        for name, (train, evaluation) in datasets(args.datasets.split(",")).items():
            runs: dict[str, list[dict]] = {SVC: [], **{m: [] for m in models}}
            for seed in args.seeds:
                for label in runs:
                    print(f"== {name} {label} seed {seed}", flush=True)
                    row = (run_svc(train, evaluation, seed, tmp, args.quiet) if label == SVC
                           else run_textclf(label, train, evaluation, seed, tmp, args.quiet))
                    print(f"   {json.dumps({k: v for k, v in row.items() if k != 'selection'})}", flush=True)
                    runs[label].append(row)
            rows = {label: combine(r) for label, r in runs.items()}
            result["datasets"][name] = {"train": train, "eval": evaluation, "rows": rows, "verdicts": verdicts(rows),
                                        "runs": runs}
            print(markdown({**result, "datasets": {name: result["datasets"][name]}}), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        write_section(args.markdown, "baselines", markdown(result))
    print(f"wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""))


if __name__ == "__main__":
    main()
