"""textclf next to the tools practitioners compare it with, in one invocation, sides alternating.

1. Bags of n-grams, on ag7600 and SST-2: textclf's default (`textclf train` with only the
   data flags) and ngram-mlp vs scikit-learn TF-IDF + LinearSVC and fastText
   (fasttext-wheel: its defaults, and the tutorial's `-lr 1.0 -epoch 25 -wordNgrams 2`;
   the training file shuffled with the seed, the tutorial's lower-casing and punctuation
   split). Every seed is one round; the order of the sides flips from round to round.
2. Fine-tuning ../shared/models/all-MiniLM-L6-v2 on ag7600 with one recipe: batch 32,
   AdamW lr 5e-5, weight decay 0.01, 10% linear warmup then linear decay, one epoch,
   the same max_length (textclf's, from the training texts): `textclf train --experiment
   minilm-finetune --set training.epochs=1` vs the Hugging Face Trainer on PyTorch CPU
   (AutoModelForSequenceClassification, dynamic padding).

The peers run from their own venv (bench/out/peers-venv), which this script creates and
fills on first use: torch 2.13.0 (the CPU build; an unpinned torch pulls CUDA wheels),
transformers 5, fasttext-wheel 0.9.2 with numpy<2 (its predict fails on NumPy 2),
scikit-learn. Nothing is installed into textclf's environment. Both sides read the same
examples (written once from textclf's reader). Each row is a child process: wall s is the
whole command, imports included; peak RSS from wait4. Writes JSON and the `peers` section
of docs/BENCHMARKS.md.

    .venv/bin/python bench/peers.py                          # ≈ 40 min on 2 cores
    .venv/bin/python bench/peers.py --parts ngrams --datasets ag7600 --seeds 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, SHARED, publish, run_child, write_section
from baselines import DATASETS, datasets, run_textclf

HERE = Path(__file__).resolve().parent
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
VENV = ROOT / "bench" / "out" / "peers-venv"
WORKER = HERE / "peers_worker.py"
# Pinned where an open range goes wrong (see ../shared/docs/STACK-NOTES.md).
REQUIREMENTS = ["torch==2.13.0", "transformers>=5,<6", "accelerate", "fasttext-wheel==0.9.2", "numpy<2",
                "scikit-learn"]
FASTTEXT = {"fasttext": {}, "fasttext-bigrams": {"lr": 1.0, "epoch": 25, "wordNgrams": 2}}
FORCED = {"sst2x10": "ngram-linear"}  # data sets where `textclf default` is the n-gram default forced
RECIPE = {"batch_size": 32, "learning_rate": 5e-5, "weight_decay": 0.01, "warmup": 0.1, "epochs": 1}


def peers_python(venv: Path) -> Path:
    """The peers' interpreter; the venv is created and filled when missing or its requirements changed."""
    python, stamp = venv / "bin" / "python", venv / "textclf-peers.json"
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == REQUIREMENTS:
        return python
    log = venv.with_suffix(".log")
    print(f"creating the peers' venv {venv} ({' '.join(REQUIREMENTS)}); pip's log: {log}", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        for cmd in ([sys.executable, "-m", "venv", "--clear", str(venv)],
                    [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS]):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"could not set up the peers' venv ({' '.join(cmd[:4])} failed); see {log}")
    stamp.write_text(json.dumps(REQUIREMENTS))
    return python


def write_examples(train: str, evaluation: str, out: Path) -> tuple[Path, Path, int]:
    """textclf's reading of the data as JSON lines {text, label} for the peers; the class count."""
    from textclf.config import DataConfig
    from textclf.data.sources import load_train_eval

    train_set, eval_set = load_train_eval(DataConfig(train=train, eval=evaluation), 0)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "train.jsonl", out / "eval.jsonl"
    for path, examples in zip(paths, (train_set, eval_set)):
        with open(path, "w", encoding="utf-8") as f:
            for text, label in zip(examples.texts, examples.labels):
                f.write(json.dumps({"text": str(text), "label": int(label)}) + "\n")
    return *paths, len(train_set.label_names)


def run_peer(python: Path, kind: str, cfg: dict, tmp: Path, quiet: bool, label: str) -> dict:
    config, out = tmp / f"{label}.config.json", tmp / f"{label}.out.json"
    config.write_text(json.dumps(cfg))
    out.unlink(missing_ok=True)
    child = run_child([str(python), str(WORKER), kind, str(config), str(out)], quiet)
    wall, rss, code = child["wall_seconds"], child["peak_rss_mb"], child["code"]
    if code != 0 or not out.exists():
        return {"error": f"exit {code}: {kind} peer"}
    return {**json.loads(out.read_text()), "wall_seconds": wall, "peak_rss_mb": rss, "model": label}


def run_finetune(train: str, evaluation: str, seed: int, tmp: Path, quiet: bool) -> dict:
    runs_root = tmp / f"runs-finetune-{seed}"
    cmd = [str(Path(sys.executable).parent / "textclf"), "train", "--experiment", "minilm-finetune",
           "--experiments-file", str(ROOT / "experiments.yaml"), "--set", f"training.epochs={RECIPE['epochs']}",
           "--data", train, "--eval-data", evaluation, "--seed", str(seed), "--runs-root", str(runs_root)]
    child = run_child(cmd, quiet)
    wall, rss, code = child["wall_seconds"], child["peak_rss_mb"], child["code"]
    if code != 0:
        return {"error": f"exit {code}: {' '.join(cmd)}"}
    from textclf.runs import Run

    run = Run((runs_root / "latest").resolve())
    m, config = run.metrics, run.config
    t = config["training"]
    assert (t["global_batch_size"], t["learning_rate"], t["weight_decay"], t["warmup"]) == (
        RECIPE["batch_size"], RECIPE["learning_rate"], RECIPE["weight_decay"], RECIPE["warmup"]), t
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "train_seconds": m["train_seconds"],
        "train_examples_per_second": m["train_examples_per_second"],
        "wall_seconds": wall,
        "peak_rss_mb": rss,
        # where the whole command's seconds go (the rest: imports, saving the run, process exit)
        **{
            k: m.get(k)
            for k in ("load_seconds", "build_seconds", "prepare_seconds", "validation_seconds", "eval_seconds")
        },
        "eval_from_last_validation": m.get("eval_from_last_validation"),
        "max_length": config["model_params"]["max_length"],
        "precision": run.info.get("runtime", {}).get("precision"),
        "model": "textclf minilm-finetune",
    }


def combine(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return {"error": rows[0]["error"]}
    sd = lambda k: statistics.stdev(r[k] for r in ok) if len(ok) > 1 else 0.0  # noqa: E731
    med = lambda k: statistics.median(r[k] for r in ok)  # noqa: E731
    return {"accuracy": statistics.mean(r["accuracy"] for r in ok), "accuracy_sd": sd("accuracy"),
            "accuracies": [r["accuracy"] for r in ok], "train_seconds": med("train_seconds"),
            "train_examples_per_second": med("train_examples_per_second"), "wall_seconds": med("wall_seconds"),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok), "model": ok[0].get("model"),
            "precision": ok[0].get("precision"),
            "selection": ok[0].get("selection"), "max_length": ok[0].get("max_length"),
            "runs": len(ok), "failed": len(rows) - len(ok)}


WALL_BOUND = 2.0  # the default's whole command at most this times TF-IDF + LinearSVC's
RSS_BOUND_MB = {"sst2x10": 3072}  # peak RSS bound per data set (default 1,024 MB)


def verdicts_ngrams(rows: dict[str, dict], name: str = "") -> list[str]:
    auto = rows.get("textclf default")
    out = []
    if not auto or "accuracy" not in auto:
        return out
    svc = rows.get("tfidf-linearsvc")
    if svc and "wall_seconds" in svc:
        ratio = auto["wall_seconds"] / svc["wall_seconds"]
        out.append(f"cost: the default's whole command {ratio:.2f}× TF-IDF+LinearSVC's wall time (bound ≤ "
                   f"{WALL_BOUND:g}×: {'met' if ratio <= WALL_BOUND else 'MISSED'})")
    bound = RSS_BOUND_MB.get(name, 1024)
    out.append(f"memory: the default's peak RSS {auto['peak_rss_mb']:,.0f} MB (bound ≤ {bound:,} MB: "
               f"{'met' if auto['peak_rss_mb'] <= bound else 'MISSED'})")
    for peer in ("tfidf-linearsvc", *FASTTEXT):
        r = rows.get(peer)
        if not r or "accuracy" not in r:
            continue
        gap = 100 * (auto["accuracy"] - r["accuracy"])
        out.append(
            f"textclf default vs {peer}: {gap:+.2f} pt accuracy (target ≥ 0: {'met' if gap >= 0 else 'MISSED'}), "
            f"{auto['wall_seconds'] / r['wall_seconds']:.1f}× its wall time, "
            f"{auto['train_examples_per_second'] / r['train_examples_per_second']:.2g}× its training ex/s"
        )
    return out


def verdicts_finetune(rows: dict[str, dict]) -> list[str]:
    ours, hf = rows.get("textclf"), rows.get("hf-trainer")
    if not ours or not hf or "accuracy" not in ours or "accuracy" not in hf:
        return []
    speed = ours["train_examples_per_second"] / hf["train_examples_per_second"]
    wall = hf["wall_seconds"] / ours["wall_seconds"]
    gap = 100 * (ours["accuracy"] - hf["accuracy"])
    return [f"training ex/s: {speed:.2f}× the Trainer's (target ≥ 2×: {'met' if speed >= 2 else 'MISSED'})",
            f"whole command: {wall:.2f}× faster (target ≥ 1.5×: {'met' if wall >= 1.5 else 'MISSED'})",
            f"accuracy: {gap:+.2f} pt vs the Trainer (target ≥ -0.5 pt: {'met' if gap >= -0.5 else 'MISSED'})"]


def table(rows: dict[str, dict], ours_key: str) -> list[str]:
    ours = rows.get(ours_key, {})
    lines = [
        "| side | eval acc | train ex/s | train s | wall s | peak RSS MB | textclf's ex/s ÷ it "
        "| its wall ÷ textclf's | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows.items():
        if "error" in r:
            lines.append(f"| {label} | failed | | | | | | | {r['error']} |")
            continue
        mine = label == ours_key or "accuracy" not in ours
        speed = "" if mine else f"{ours['train_examples_per_second'] / r['train_examples_per_second']:.2f}×"
        wall = "" if mine else f"{r['wall_seconds'] / ours['wall_seconds']:.2f}×"
        note = r.get("selection") or ", ".join(
            x for x in (r.get("precision") or "", f"max_length {r['max_length']}" if r.get("max_length") else "") if x
        )
        lines.append(f"| {label} | {100 * r['accuracy']:.2f}% ± {100 * r['accuracy_sd']:.2f} | "
                     f"{r['train_examples_per_second']:,.1f} | {r['train_seconds']:.1f} | {r['wall_seconds']:.1f} | "
                     f"{r['peak_rss_mb']:,.0f} | {speed} | {wall} | {note} |")
    return lines


def _breakdown(runs: dict[str, list[dict]]) -> list[str]:
    """Where each side's whole-command seconds went (first round)."""
    out = []
    ours = next((r for r in runs.get("textclf", []) if "error" not in r), None)
    if ours and ours.get("load_seconds") is not None:
        parts = {"reading the data": ours["load_seconds"], "building the model": ours["build_seconds"],
                 "tokenizing": ours["prepare_seconds"], "training steps": ours["train_seconds"],
                 "validation (the eval data, each epoch)": ours["validation_seconds"],
                 "final evaluation": ours["eval_seconds"]}
        rest = ours["wall_seconds"] - sum(parts.values())
        reused = " (the last validation pass's predictions reused)" if ours.get("eval_from_last_validation") else ""
        out.append(f"- textclf's {ours['wall_seconds']:.0f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
                   + f"{reused}; imports, saving the run and exit {rest:.1f}")
    hf = next((r for r in runs.get("hf-trainer", []) if "error" not in r), None)
    if hf and hf.get("import_seconds") is not None:
        parts = {"imports": hf["import_seconds"], "loading the checkpoint": hf["load_seconds"],
                 "tokenizing": hf["tokenize_seconds"], "training steps": hf["train_seconds"],
                 "final evaluation": hf["eval_seconds"]}
        rest = hf["wall_seconds"] - sum(parts.values())
        out.append(f"- the Trainer's {hf['wall_seconds']:.0f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
                   + f"; the rest {rest:.1f}")
    return out


def markdown(result: dict) -> str:
    title = ("Peers: textclf next to scikit-learn, fastText and the Hugging Face Trainer" if result.get(
        "section", "peers") == "peers" else "The default's cost: textclf next to TF-IDF + LinearSVC and fastText "
        "on data of every shape")
    lines = [f"## {title} (`bench/peers.py`)", "",
             "Produced by one command; every number below was measured by it:", "", f"    {result['command']}", "",
             f"Machine: {result['machine']}, {result['date']}. Peers: {result.get('peers', '')}. Every row is one "
             "process as a user runs it (wall s includes imports and loading); accuracy is mean ± sd over the "
             "rounds (seeds), seconds and ex/s medians. The order of the sides flips every round.", ""]
    for name, ds in result.get("ngrams", {}).items():
        lines += [f"### Bags of n-grams: {name} (seeds {', '.join(map(str, result['seeds']))})", "",
                  f"train `{ds['train']}`, eval `{ds['eval']}`. `textclf default` is `textclf train` with only "
                  "the data flags. train ex/s: training rows per second of fitting, each row counted once (fastText "
                  "passes over them 5 times by default, 25 with bigrams; ngram-linear's seconds include its features "
                  "and every liblinear fit of the C search)." + (" Here `textclf default` is `--model ngram-linear` "
                  "(at this size auto picks the transformer)." if name in FORCED else ""), "",
                  *table(ds["rows"], "textclf default"), "", *[f"- {v}" for v in ds["verdicts"]], ""]
    ft = result.get("finetune")
    if ft:
        lines += [f"### Fine-tuning all-MiniLM-L6-v2 on ag7600 ({ft['rounds']} round(s), seeds "
                  f"{', '.join(map(str, ft['seeds']))})", "",
                  f"Recipe on both sides: {ft['recipe']}; max_length {ft['max_length']} (textclf's, from the "
                  "training texts). textclf: the `minilm-finetune` experiment with `training.epochs=1` (mean "
                  "pooling); Trainer: AutoModelForSequenceClassification (its pooled-output head), dynamic padding, "
                  "no evaluation during training. Train ex/s: training examples per second of training steps only "
                  "(textclf's train_seconds; the Trainer's train_runtime).", "",
                  *table(ft["rows"], "textclf"), "", *[f"- {v}" for v in ft["verdicts"]],
                  *_breakdown(ft["runs"]), ""]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="ngrams,finetune")
    parser.add_argument("--datasets", default="ag7600,sst2", help=f"for the n-gram part: any of {', '.join(DATASETS)}")
    parser.add_argument("--sides", default="", help="n-gram sides to run (comma-separated labels; default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="n-gram rounds")
    parser.add_argument("--finetune-seeds", type=int, nargs="+", default=[42], help="fine-tuning rounds")
    parser.add_argument("--venv", default=str(VENV))
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "peers.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--quiet", action="store_true", help="hide the children's output")
    parser.add_argument("--from-json", metavar="PATH", help="only rewrite the Markdown section from a saved result")
    parser.add_argument("--section", default="peers",
                        help="the docs/BENCHMARKS.md section to write (e.g. costs, for a run of the n-gram part alone)")
    return parser


def _ngram_part(args, python: Path, tmp: Path) -> dict:
    """The n-gram part: per data set, every side in alternating rounds (one per seed); rows and verdicts."""
    out = {}
    for name, (train, evaluation) in datasets(args.datasets.split(",")).items():
        train_jsonl, eval_jsonl, _ = write_examples(train, evaluation, tmp / name)
        # 670k rows: auto would pick the transformer; the issue's question is the n-gram default's cost there
        default = FORCED.get(name, "auto")
        sides = {"tfidf-linearsvc": lambda s: run_peer(python, "svc", {"train": str(train_jsonl), "eval": str(
                     eval_jsonl), "seed": s}, tmp, args.quiet, "tfidf-linearsvc"),
                 "textclf default": lambda s, m=default: run_textclf(m, train, evaluation, s, tmp, args.quiet)}
        for label, params in FASTTEXT.items():
            sides[label] = lambda s, label=label, params=params: run_peer(
                python, "fasttext", {"train": str(train_jsonl), "eval": str(eval_jsonl), "seed": s,
                                     "params": params}, tmp, args.quiet, label)
        sides["textclf ngram-mlp"] = lambda s: run_textclf("ngram-mlp", train, evaluation, s, tmp, args.quiet)
        wanted = args.sides.split(",") if args.sides else list(sides)
        sides = {label: side for label, side in sides.items() if label in wanted}
        runs: dict[str, list[dict]] = {label: [] for label in sides}
        for r, seed in enumerate(args.seeds):
            for label in (list(sides) if r % 2 == 0 else list(reversed(sides))):
                print(f"== {name} {label} seed {seed}", flush=True)
                row = sides[label](seed)
                print(f"   {json.dumps(row)}", flush=True)
                runs[label].append(row)
        rows = {label: combine(rs) for label, rs in runs.items()}
        out[name] = {"train": train, "eval": evaluation, "rows": rows,
                                  "verdicts": verdicts_ngrams(rows, name), "runs": runs}
    return out


def _finetune_part(args, python: Path, tmp: Path) -> dict:
    """The fine-tuning part: textclf and the HF Trainer on ag7600 with one recipe, rounds alternating."""
    if not MINILM.exists():
        raise SystemExit(f"the fine-tuning part needs {MINILM}; pass --parts ngrams without it")
    from run import _ensure_minilm

    _ensure_minilm()
    train, evaluation = datasets(["ag7600"])["ag7600"]
    train_jsonl, eval_jsonl, classes = write_examples(train, evaluation, tmp / "ag7600")
    runs = {"textclf": [], "hf-trainer": []}
    for r, seed in enumerate(args.finetune_seeds):
        for label in (["textclf", "hf-trainer"] if r % 2 == 0 else ["hf-trainer", "textclf"]):
            print(f"== fine-tune {label} seed {seed}", flush=True)
            if label == "textclf":
                row = run_finetune(train, evaluation, seed, tmp, args.quiet)
            else:
                # textclf's max_length (from the training texts alone, so the same every round);
                # round 0 runs textclf first
                max_length = next((x["max_length"] for x in runs["textclf"] if "max_length" in x), 128)
                row = run_peer(python, "hf", {"train": str(train_jsonl), "eval": str(eval_jsonl), "seed": seed,
                                              "model": str(MINILM), "num_labels": classes,
                                              "max_length": max_length, **RECIPE}, tmp, args.quiet,
                               "hf-trainer")
                row.setdefault("max_length", max_length)
            print(f"   {json.dumps(row)}", flush=True)
            runs[label].append(row)
    rows = {label: combine(rs) for label, rs in runs.items()}
    return {"rows": rows, "verdicts": verdicts_finetune(rows), "runs": runs,
                          "rounds": len(args.finetune_seeds), "seeds": args.finetune_seeds,
                          "max_length": rows["textclf"].get("max_length"),
                          "recipe": "batch 32, AdamW lr 5e-5, weight decay 0.01, 10% linear warmup then "
                                    "linear decay, 1 epoch"}


def main() -> None:
    args = _parser().parse_args()
    if args.from_json:
        write_section(args.markdown, args.section, markdown(json.loads(Path(args.from_json).read_text())))
        print(f"rewrote the peers section of {args.markdown} from {args.from_json}")
        return
    os.environ.setdefault("TEXTCLF_HOME", str(ROOT / "bench" / "out" / "home"))
    parts = set(args.parts.split(","))
    python = peers_python(Path(args.venv))
    versions = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(', '.join(f'{p} ' + "
                               "m.version(p) for p in ('torch', 'transformers', 'fasttext-wheel', 'scikit-learn', "
                               "'numpy')))"], capture_output=True, text=True, check=True).stdout.strip()
    result = {"command": "python bench/peers.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M"),
              "section": args.section,
              "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}", "peers": versions,
              "seeds": args.seeds}
    with tempfile.TemporaryDirectory(prefix="textclf-peers-") as tmp:
        tmp = Path(tmp)
        if "ngrams" in parts:
            result["ngrams"] = _ngram_part(args, python, tmp)
        if "finetune" in parts:
            result["finetune"] = _finetune_part(args, python, tmp)
    publish(result, args.json, args.markdown, args.section, markdown(result))


if __name__ == "__main__":
    main()
