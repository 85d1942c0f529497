"""textclf's benchmark: every recipe next to the lesson's code as written, in one invocation.

    .venv/bin/python bench/run.py                      # ag7600, all recipes (≈ 25 min on 2 cores)
    .venv/bin/python bench/run.py --recipes transformer --data csv:train.csv --eval-data csv:eval.csv

Each side of each recipe runs in its own child process (one process tree), so the table's
peak RSS and wall time (process start to exit, TensorFlow import included) are that
command's alone. Columns:
- train ex/s: training examples per second of training-batch time (validation excluded;
  for textclf's frozen recipe the one pass computing the encoder features is included);
- eval acc: accuracy on the eval data;
- MFU: useful model FLOPs per second of training time over the machine's fp32 matmul peak,
  measured here (2048^3 tf.matmul, best of several). Useful FLOPs count the real tokens of
  each example (padding is waste, not model work): 6 x dense params per token plus
  12 x attention width x length per token for trained layers, 2x and 4x for frozen ones
  (forward only); embeddings and the small classification head are not counted.
Also measured: the input pipeline (step time on textclf's real pipeline vs the same batches
cached in memory). Writes JSON (--json) and Markdown (--markdown, docs/BENCHMARKS.md).

Recipes (lesson code as written <-> textclf experiment in experiments.yaml):
- transformer:   lesson cells 1-5 (pad 256), trained as many epochs as textclf's <-> transformer-tuned
- bert-frozen:   lesson cells 7-9, frozen encoder, pooled_output              <-> minilm-frozen
- bert-finetune: lesson cells 10-12, create_optimizer AdamW, after the frozen fit <-> minilm-finetune
The lesson's small_bert is replaced by ../shared/models/all-MiniLM-L6-v2 (imported into
bench/out/home as `minilm`); its recipes use the lesson's own preprocessing model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import run_child

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
LESSON_PREPROCESS = SHARED / "models" / "bert_en_uncased_preprocess_3"
HOME = ROOT / "bench" / "out" / "home"

RECIPES = {
    "transformer": {"experiment": "transformer-tuned", "targets": {"speedup": 5.0, "accuracy": 0.86}},
    "bert-frozen": {"experiment": "minilm-frozen", "targets": {"speedup": 3.0}},
    "bert-finetune": {"experiment": "minilm-finetune", "targets": {"speedup": 2.0, "accuracy": 0.91}},
}


# ----------------------------------------------------------------------------- FLOPs


def _per_token(variables) -> tuple[int, int]:
    """(dense kernel params applied per token, summed attention width over layers) of encoder blocks."""
    dense = attention = 0
    for v in variables:
        if not hasattr(v, "shape") or not hasattr(v, "name"):  # e.g. a lookup table's vocabulary handle
            continue
        name, shape = v.name, v.shape.as_list()
        if "transformer" not in name or "kernel" not in name or len(shape) < 2:
            continue
        dense += int(v.shape.num_elements())
        if "query/kernel" in name:
            attention += int(v.shape[1:].num_elements())
    return dense, attention


def training_flops(trained, frozen, lengths, passes: int, frozen_passes: int) -> float:
    """Useful FLOPs: trained layers forward+backward `passes` times, frozen ones forward `frozen_passes` times."""
    import numpy as np

    t = np.asarray(lengths, dtype=np.float64)
    n_t, a_t = _per_token(trained)
    n_f, a_f = _per_token(frozen)
    per_pass_trained = float((6 * n_t * t + 12 * a_t * t * t).sum())
    per_pass_frozen = float((2 * n_f * t + 4 * a_f * t * t).sum())
    return passes * per_pass_trained + frozen_passes * per_pass_frozen


# ----------------------------------------------------------------------------- workers


def _examples(args):
    from textclf.config import DataConfig
    from textclf.data.sources import load_train_eval

    return load_train_eval(DataConfig(train=args.data, eval=args.eval_data), seed=args.seed)


def _limited(args, out_dir: Path) -> str:
    """A data spec for `--limit N` random training examples (same for both sides): a text,label CSV."""
    import csv

    import numpy as np

    train, _ = _examples(args)
    keep = np.sort(np.random.default_rng(args.seed).permutation(len(train))[: args.limit])
    path = out_dir / f"train-{args.limit}.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows([str(train.texts[i]), train.label_names[train.labels[i]]] for i in keep)
    return f"csv:{path}"


def worker_lesson(args) -> dict:
    import lesson

    train, evaluation = _examples(args)
    if args.recipe == "transformer":
        out = lesson.transformer(train, evaluation, epochs=args.lesson_epochs, seed=args.seed)
        flops = training_flops(out["variables"], [], out["token_lengths"], out["epochs"], 0)
    else:
        from textclf.models import store

        encoder = store.find("minilm") / "encoder"
        finetune = args.recipe == "bert-finetune"
        out = lesson.bert(train, evaluation, preprocess=LESSON_PREPROCESS, encoder=encoder, finetune=finetune,
                          seed=args.seed)
        flops = training_flops(out["variables"], out["frozen_variables"], out["token_lengths"], 1, 1)
    return {"train_examples": len(train), "epochs": out["epochs"],
            "train_examples_per_second": len(train) * out["epochs"] / out["train_seconds"],
            "train_seconds": out["train_seconds"], "eval_accuracy": out["eval_accuracy"], "train_flops": flops,
            "mean_tokens": float(out["token_lengths"].mean()), "padded_length": out["padded_length"],
            "analysis_seconds": out["analysis_seconds"]}


def worker_textclf(args) -> dict:
    """The command as a user runs it (its own process: TensorFlow's import counts); then the analysis."""
    runs_root = Path(args.runs_root)
    experiment = RECIPES[args.recipe]["experiment"]
    code = subprocess.run([str(Path(sys.executable).with_name("textclf")), "experiments", "run", experiment,
                           "--data", args.data, "--eval-data", args.eval_data, "--runs-root", str(runs_root), "--fresh",
                           "--experiments-file", str(ROOT / "experiments.yaml"), "--set", f"training.seed={args.seed}",
                           *sum((["--set", s] for s in args.set), [])]).returncode
    if code:
        raise SystemExit(f"textclf experiments run {experiment} failed (exit {code})")
    from textclf._tf import tf

    analysis_start = time.perf_counter()  # what follows is the benchmark's, not the command's
    run = (runs_root / "latest").resolve()
    from textclf.runs import Run

    metrics, config = Run(run).metrics, Run(run).config

    from textclf.models.saving import load_model

    train, _ = _examples(args)
    model = load_model(run)
    to_ids = model.get_layer("text_to_ids")
    import numpy as np

    lengths = np.concatenate([(to_ids(tf.constant(train.texts[i:i + 1024].astype(str))).numpy() != 0).sum(axis=1)
                              for i in range(0, len(train), 1024)])
    epochs = metrics["epochs_run"]
    if metrics.get("frozen_features_cached"):  # features once, then only the head trains
        flops = training_flops([], model.non_trainable_variables, lengths, 0, 1)
    else:
        flops = training_flops(model.trainable_variables, model.non_trainable_variables, lengths, epochs, epochs)
    return {"train_examples": metrics["train_examples"], "epochs": epochs,
            "train_examples_per_second": metrics["train_examples_per_second"],
            "train_seconds": metrics["train_seconds"], "eval_accuracy": metrics["accuracy"], "train_flops": flops,
            "mean_tokens": float(lengths.mean()), "padded_length": "per batch", "run_dir": str(run),
            "analysis_seconds": time.perf_counter() - analysis_start,
            "precision": config["runtime"]["precision"], "config": config}


def worker_peak(args) -> dict:
    """Best tf.matmul throughput for 2048^3 in float32 and bfloat16, GFLOP/s."""
    from textclf._tf import tf

    out = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal([2048, 2048]), dtype)
        b = tf.cast(tf.random.normal([2048, 2048]), dtype)
        mm = tf.function(lambda x, y: tf.matmul(x, y))
        mm(a, b).numpy()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(10):
                r = mm(a, b)
            r.numpy()
            best = min(best, (time.perf_counter() - start) / 10)
        out[f"{dtype.name}_gflops"] = 2 * 2048**3 / best / 1e9
    return out


def worker_pipeline(args) -> dict:
    """Step time of the transformer recipe on the real pipeline vs the same batches cached in memory."""
    from textclf._tf import keras, tf
    from textclf.data.pipeline import encode_texts, training_batches
    from textclf.experiments import load_experiments
    from textclf.models.transformer.model import build_transformer
    from textclf.training import TrainTimer

    train, _ = _examples(args)
    config = load_experiments(ROOT / "experiments.yaml").resolve("transformer-tuned", {"data": {"train": args.data}})
    t = config.training
    keras.utils.set_random_seed(args.seed)
    built = build_transformer(config.model_params, num_classes=len(train.label_names),
                              train_texts=train.texts)
    ids = encode_texts(train.texts, built.encode)
    real = training_batches(ids, train.labels, global_batch_size=t.global_batch_size, seed=t.seed, repeat=True)
    epochs, rounds = 2, 5
    cached = real.dataset.take(real.steps * epochs * (rounds + 1)).cache()
    for _ in cached:  # fill the cache: every batch now sits in memory, nothing left to compute
        pass
    sources = {"real": iter(real.dataset), "cached": iter(cached.prefetch(tf.data.AUTOTUNE))}
    models, times = {}, {name: [] for name in sources}
    for name in sources:
        models[name] = keras.models.clone_model(built.model)
        models[name].compile(optimizer=keras.optimizers.Adam(t.learning_rate),
                             loss="sparse_categorical_crossentropy", steps_per_execution=t.steps_per_execution)
        models[name].fit(sources[name], epochs=epochs, steps_per_epoch=real.steps, verbose=0)  # tracing
    # Alternate short rounds so both sides see the same machine state; median per side.
    for _ in range(rounds):
        for name in sources:
            timer = TrainTimer()
            models[name].fit(sources[name], epochs=epochs, steps_per_epoch=real.steps, callbacks=[timer], verbose=0)
            times[name].append(1000 * timer.train_seconds / (real.steps * epochs))
    result = {f"{name}_step_ms": statistics.median(ts) for name, ts in times.items()}
    result["rounds"] = times
    result["ratio"] = result["real_step_ms"] / result["cached_step_ms"]
    return result


def worker_predict(args) -> dict:
    """Warm prediction throughput: texts/s for 10,000 lines read from a file, model already loaded."""
    from textclf.prediction import load_predictor

    _, evaluation = _examples(args)
    texts = [str(t) for t in evaluation.texts]
    lines = (texts * (10_000 // len(texts) + 1))[:10_000]
    path = Path(args.worker_out).with_suffix(".lines.txt")
    path.write_text("\n".join(t.replace("\n", " ") for t in lines) + "\n", encoding="utf-8")
    predictor = load_predictor(args.runs_root)
    predictor.predict(lines[:512])  # warm: graphs traced
    start = time.perf_counter()
    from textclf.textfiles import read_text

    results = predictor.predict([x for x in read_text(str(path)).splitlines() if x.strip()])
    seconds = time.perf_counter() - start
    return {"texts": len(results), "seconds": seconds, "texts_per_second": len(results) / seconds}


def _cli_seconds(*argv: str, repeat: int = 3) -> float:
    """Median wall time of `textclf ARGV` from process start to exit."""
    exe = Path(sys.executable).with_name("textclf")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([str(exe), *argv], cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _help_imports_tensorflow() -> bool:
    """Whether `python -m textclf --help` imports TensorFlow (Python's own import log says)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "textclf", "--help"], capture_output=True,
                         text=True, check=True)
    return any(line.rsplit("|", 1)[-1].strip() == "tensorflow" for line in out.stderr.splitlines())


def cli_latency(rows: list[dict], args, out_dir: Path) -> dict:
    """`textclf --help`, cold `textclf predict "headline"` and warm throughput for each textclf run."""
    result = {"help_seconds": _cli_seconds("--help", repeat=5), "help_imports_tensorflow": _help_imports_tensorflow(),
              "predict": []}
    for row in rows:
        if row["side"] != "textclf" or "run_dir" not in row:
            continue
        cold = _cli_seconds("predict", "Oil prices jump as OPEC cuts output", "--run", row["run_dir"])
        sub = argparse.Namespace(**{**vars(args), "runs_root": row["run_dir"]})
        warm = _child("predict", row["recipe"], sub, out_dir)
        result["predict"].append({"recipe": row["label"], "cold_seconds": cold,
                                  "warm_texts_per_second": warm.get("texts_per_second"),
                                  "warm_peak_rss_mb": warm.get("peak_rss_mb")})
    return result


# ----------------------------------------------------------------------------- parent


def _child(kind: str, recipe: str, args, out_dir: Path) -> dict:
    """Run one worker process; its result plus wall time and peak RSS (from wait4)."""
    out = out_dir / f"{kind}-{recipe}-{args.seed}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        kind,
        "--recipes",
        recipe,
        "--data",
        args.data,
        "--eval-data",
        args.eval_data,
        "--seed",
        str(args.seed),
        "--lesson-epochs",
        str(args.lesson_epochs),
        "--limit",
        str(args.limit),
        "--runs-root",
        str(getattr(args, "runs_root", None) or out_dir / "runs"),
        "--worker-out",
        str(out),
        *sum((["--set", s] for s in args.set), []),
    ]
    child = run_child(cmd, quiet=args.quiet, show_errors=True, result=out)
    wall = child["wall_seconds"]
    if child["code"] != 0 or "result" not in child:
        return {"error": f"{kind} {recipe} exited with {child['code']}", "wall_seconds": wall}
    result = child["result"]
    # Wall time of the recipe itself: without the FLOP/token analysis the worker does after it.
    result.update(wall_seconds=wall - result.pop("analysis_seconds", 0.0), peak_rss_mb=child["peak_rss_mb"])
    return result


def _combine(runs: list[dict], seeds: list[int]) -> dict:
    """One row for a recipe side run with several seeds: median speed, mean accuracy, max RSS."""
    failed = [r for r in runs if "error" in r]
    if failed or len(runs) == 1:
        return dict(failed[0] if failed else runs[0], seeds=seeds[: len(runs)])
    row = dict(runs[0], seeds=seeds, runs=[{k: r.get(k) for k in ("train_examples_per_second", "eval_accuracy",
                                                                  "wall_seconds", "peak_rss_mb", "mfu")}
                                           for r in runs])
    for key in ("train_examples_per_second", "train_seconds", "mfu"):
        if runs[0].get(key) is not None:
            row[key] = statistics.median(r[key] for r in runs)
    row["eval_accuracy"] = statistics.mean(r["eval_accuracy"] for r in runs)
    row["eval_accuracies"] = [r["eval_accuracy"] for r in runs]
    row["wall_seconds"] = statistics.mean(r["wall_seconds"] for r in runs)
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return row


def _ensure_minilm() -> None:
    from textclf.models import store
    from textclf.models.bert.hf_import import import_hf

    if store.find("minilm") is None:
        if not MINILM.exists():
            raise SystemExit(f"the BERT recipes need {MINILM}; pass --recipes transformer without it")
        print(f"importing {MINILM} as minilm into {HOME} (once)", flush=True)
        import_hf(MINILM, "minilm")


def _lesson_label(recipe: str, args) -> str:
    return {
        "transformer": f"lesson transformer (pad 256, {args.lesson_epochs} "
        f"epoch{'s' if args.lesson_epochs > 1 else ''})",
        "bert-frozen": "lesson frozen BERT (pad 128, pooled)",
        "bert-finetune": "lesson fine-tune (pad 128, AdamW; after its frozen fit)",
    }[recipe]


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def _rows_table(rows: list[dict]) -> list[list[str]]:
    return [
        [
            r["label"],
            _fmt(r.get("train_examples_per_second"), ",.1f"),
            _fmt(None if r.get("eval_accuracy") is None else 100 * r["eval_accuracy"], ".2f")
            + ("%" if r.get("eval_accuracy") is not None else ""),
            _fmt(r.get("peak_rss_mb"), ",.0f"),
            _fmt(r.get("wall_seconds"), ",.1f"),
            _fmt(None if r.get("mfu") is None else 100 * r["mfu"], ".1f") + ("%" if r.get("mfu") is not None else ""),
            r.get("error") or _seed_note(r),
        ]
        for r in rows
    ]


def _seed_note(row: dict) -> str:
    accs = row.get("eval_accuracies")
    if not accs:
        return ""
    return (
        f"{len(accs)} seeds ({row['seeds'][0]}–{row['seeds'][-1]}): acc "
        + " / ".join(f"{100 * a:.2f}" for a in accs)
        + "%, ex/s median"
    )


HEADER = ["recipe", "train ex/s", "eval acc", "peak RSS MB", "wall s", "MFU", "note"]


def _markdown(result: dict) -> str:
    lines = ["# Benchmarks", "",
             "Produced by one command on one machine; every number below was measured by it.", "",
             f"    {result['command']}", "",
             f"Machine: {result['machine']['cpu']} ({result['machine']['cpu_count']} cores), "
             f"Python {result['machine']['python']}, TensorFlow {result['machine']['tensorflow']}, "
             f"{result['machine']['date']}.", "",
             f"Data: train `{result['data']}`, eval `{result['eval_data']}`"
             + (f", training on {result['limit']} random examples of it" if result["limit"] else "") + ".", "",
             f"Peak (measured, 2048³ `tf.matmul`): fp32 {result['peak']['float32_gflops']:.0f} GFLOP/s, "
             f"bf16 {result['peak']['bfloat16_gflops']:.0f} GFLOP/s. MFU is against the fp32 peak.", "",
             "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in _rows_table(result["rows"])]
    lines += ["", "## Against the targets", ""]
    lines += [f"- {line}" for line in result["verdicts"]]
    if result.get("pipeline"):
        p = result["pipeline"]
        lines += ["", "## Input pipeline", "",
                  f"Transformer training step on textclf's real pipeline {p['real_step_ms']:.2f} ms vs the same "
                  f"batches cached in memory {p['cached_step_ms']:.2f} ms: ratio {p['ratio']:.3f} "
                  "(target: within 5%)."]
    cli = result["cli"]
    lines += ["", "## Command latency", "",
              f"`textclf --help`: {cli['help_seconds']:.2f} s (median of 5; imports TensorFlow: "
              f"{'yes' if cli['help_imports_tensorflow'] else 'no'}).", "",
              "| run | cold `textclf predict \"headline\"` s | warm texts/s (10,000 lines from a file) |",
              "|---|---|---|"]
    lines += [f"| {p['recipe']} | {p['cold_seconds']:.2f} | {_fmt(p['warm_texts_per_second'], ',.0f')} |"
              for p in cli["predict"]]
    lines += ["", "Cold: process start to exit, median of 3, model loaded from the run directory; "
              "warm: one loaded predictor, after a warm-up call.", ""]
    lines += ["", "## How the columns are measured", "",
              "- train ex/s: training examples per second of time spent on training batches (validation "
              "excluded); textclf's frozen recipe includes its one feature-extraction pass.",
              "- peak RSS and wall: the child process that ran the recipe (TensorFlow import included).",
              "- Several seeds (the transformer recipe, `--transformer-seeds`): both sides run once per seed, "
              "alternating; train ex/s and MFU are medians, eval accuracy the mean, wall the mean, RSS the "
              "largest.",
              "- MFU: useful model FLOPs (real tokens only, padding excluded; 6·params per token + 12·attention "
              "width·length for trained layers, 2· and 4· for frozen ones) per second of training time, over "
              "the measured fp32 matmul peak.",
              "- Lesson code: bench/lesson.py, the lesson's cells as written with the data loading replaced "
              "by the same in-memory examples.", ""]
    return "\n".join(lines)


def _verdicts(rows: list[dict], recipes: list[str]) -> list[str]:
    out = []
    for recipe in recipes:
        lesson = next(r for r in rows if r["recipe"] == recipe and r["side"] == "lesson")
        ours = next(r for r in rows if r["recipe"] == recipe and r["side"] == "textclf")
        if "error" in lesson or "error" in ours:
            out.append(f"{recipe}: not measured ({lesson.get('error') or ours.get('error')})")
            continue
        speedup = ours["train_examples_per_second"] / lesson["train_examples_per_second"]
        targets = RECIPES[recipe]["targets"]
        parts = [f"{speedup:.2f}× the lesson's examples/s (target ≥ {targets['speedup']:g}×: "
                 f"{'met' if speedup >= targets['speedup'] else 'NOT met'})"]
        if "accuracy" in targets:
            acc = ours["eval_accuracy"]
            seeds = (
                f" (mean of {len(ours['eval_accuracies'])} seeds, lowest {100 * min(ours['eval_accuracies']):.2f}%)"
                if ours.get("eval_accuracies")
                else ""
            )
            parts.append(f"eval accuracy {100 * acc:.2f}%{seeds} (target ≥ {100 * targets['accuracy']:g}%: "
                         f"{'met' if acc >= targets['accuracy'] else 'NOT met'})")
        out.append(f"{recipe}: " + "; ".join(parts))
    return out


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated: " + ", ".join(RECIPES))
    parser.add_argument("--data", default=None, help="training data spec (default: ag7600 train)")
    parser.add_argument("--eval-data", default=None, help="eval data spec (default: ag7600 eval)")
    parser.add_argument("--limit", type=int, default=0, help="train on this many examples only (quick check)")
    parser.add_argument("--lesson-epochs", type=int, default=0,
                        help="lesson transformer epochs (default: as many as textclf's recipe)")
    parser.add_argument("--set", action="append", default=[], help="override for textclf's experiments")
    parser.add_argument("--seed", type=int, default=42, help="seed of every run (the first, with --transformer-seeds)")
    parser.add_argument("--transformer-seeds", type=int, default=3,
                        help="run the transformer recipe (both sides) with this many seeds from --seed on: "
                             "mean accuracy, median speed (one 1,600-row eval draw moves ±0.5 pt with the seed)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the input-pipeline measurement")
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "benchmarks.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--quiet", action="store_true", help="hide the children's output")
    parser.add_argument(
        "--worker", choices=["lesson", "textclf", "peak", "pipeline", "predict"], help=argparse.SUPPRESS
    )
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--runs-root", help=argparse.SUPPRESS)
    return parser


def _recipe_rows(recipes: list[str], args, tmp: Path, peak: dict) -> list[dict]:
    """Each recipe on both sides, the seeds alternating the sides; one combined row per recipe and side."""
    rows = []
    for recipe in recipes:
        seeds = [args.seed + i for i in range(args.transformer_seeds if recipe == "transformer" else 1)]
        runs = {"lesson": [], "textclf": []}
        for seed in seeds:  # sides alternate, so a drift in machine speed hits both alike
            for side in runs:
                print(f"== {side} {recipe} seed {seed}", flush=True)
                row = _child(side, recipe, argparse.Namespace(**{**vars(args), "seed": seed}), tmp)
                if "train_flops" in row:
                    row["mfu"] = row["train_flops"] / row["train_seconds"] / (peak["float32_gflops"] * 1e9)
                runs[side].append(row)
        for side, side_runs in runs.items():
            row = _combine(side_runs, seeds)
            row.update(recipe=recipe, side=side, label=_lesson_label(recipe, args) if side == "lesson"
                       else f"textclf {RECIPES[recipe]['experiment']}")
            rows.append(row)
    return rows


def _publish(result: dict, args) -> None:
    """The result printed, as JSON, and as docs/BENCHMARKS.md's `run` section."""
    _print(result)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.markdown:
        from benchlib import write_section

        write_section(args.markdown, "run", _markdown(result))
    print(f"wrote {args.json}" + (f" and {args.markdown}" if args.markdown else ""))


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    os.environ.setdefault("TEXTCLF_HOME", str(HOME))

    if args.worker:
        args.recipe = args.recipes
        fn = {"lesson": worker_lesson, "textclf": worker_textclf, "peak": worker_peak,
              "pipeline": worker_pipeline, "predict": worker_predict}[args.worker]
        Path(args.worker_out).write_text(json.dumps(fn(args), indent=2, default=str))
        return

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    if args.data is None:
        from benchlib import write_split

        train_csv, eval_csv = write_split(ROOT / "bench" / "out" / "ag7600")
        args.data, args.eval_data = f"csv:{train_csv}", args.eval_data or f"csv:{eval_csv}"
    if args.eval_data is None:
        parser.error("--eval-data is needed with --data")
    if any(r.startswith("bert") for r in recipes):
        _ensure_minilm()
    if not args.lesson_epochs:
        from textclf.experiments import load_experiments

        args.lesson_epochs = load_experiments(ROOT / "experiments.yaml").resolve(
            RECIPES["transformer"]["experiment"]).training.epochs

    started = time.strftime("%Y-%m-%d %H:%M")
    data_label = args.data
    with tempfile.TemporaryDirectory(prefix="textclf-bench-") as tmp:
        tmp = Path(tmp)
        if args.limit:
            args.data = _limited(args, tmp)
        peak = _child("peak", "matmul", args, tmp)
        if "error" in peak:
            raise SystemExit(peak["error"])
        rows = _recipe_rows(recipes, args, tmp, peak)
        pipeline = None if args.no_pipeline else _child("pipeline", "transformer", args, tmp)
        latency = cli_latency(rows, args, tmp)
        for row in rows:  # the runs live in tmp: keep their config, not a dangling path
            row.pop("run_dir", None)

    import textclf

    result = {
        "command": "python bench/run.py " + " ".join(sys.argv[1:]),
        "data": data_label, "eval_data": args.eval_data, "limit": args.limit, "peak": peak,
        "rows": rows, "pipeline": pipeline if pipeline and "error" not in pipeline else None,
        "verdicts": _verdicts(rows, recipes), "cli": latency,
        "machine": {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "tensorflow": _tf_version(), "textclf": textclf.__version__, "date": started},
    }
    _publish(result, args)


def _tf_version() -> str:
    from importlib.metadata import version

    return version("tensorflow")


def _print(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"textclf vs the lesson — fp32 peak {result['peak']['float32_gflops']:.0f} GFLOP/s")
    for i, name in enumerate(HEADER):
        table.add_column(name, justify="left" if i in (0, 6) else "right")
    for cells in _rows_table(result["rows"]):
        table.add_row(*cells)
    console = Console(width=160)
    console.print(table)
    for line in result["verdicts"]:
        console.print(line)
    cli = result["cli"]
    console.print(f"textclf --help: {cli['help_seconds']:.2f} s (imports TensorFlow: {cli['help_imports_tensorflow']})")
    for p in cli["predict"]:
        console.print(f"{p['recipe']}: cold predict {p['cold_seconds']:.2f} s, warm "
                      f"{_fmt(p['warm_texts_per_second'], ',.0f')} texts/s")
    if result["pipeline"]:
        p = result["pipeline"]
        console.print(f"input pipeline: real {p['real_step_ms']:.2f} ms/step, cached {p['cached_step_ms']:.2f} "
                      f"ms/step, ratio {p['ratio']:.3f}")


if __name__ == "__main__":
    main()
