"""Performance levers, each measured with and without, on this machine, in one invocation.

    .venv/bin/python bench/levers.py            # ≈ 25 min on 2 cores (23 min on 2026-12-01); writes docs/PERF-LEVERS.md

1. Precision, float32 vs mixed_bfloat16 (`--precision`), on the Transformer recipe and the
   frozen-MiniLM recipe (ex/s and accuracy) and on MiniLM fine-tuning steps (ex/s). For a
   SavedModel encoder textclf's mixed_bfloat16 on CPU is oneDNN's bfloat16 graph rewrite.
2. XLA (--jit-compile) on the Transformer recipe.
3. Global batch size on the Transformer recipe: 64 / 128 / 256; MiniLM fine-tuning steps: 16 / 32 / 64.
4. Length bucketing on vs padding every batch to 128 tokens (Transformer).
5. WordPiece tokenization of ag7600 + SST-2: the preprocessing model's `tokenize` vs
   tf-text FastBertTokenizer (ids compared text for text).
Every training measurement runs in its own process on the ag7600 split. A 2-core cloud
machine's speed drifts by up to a third within minutes, so each group (default settings
included) runs in `--rounds` rounds, the settings alternating inside a round; tables show
the median speed, the mean accuracy, and every setting against the default.
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

from benchlib import run_child

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOME = ROOT / "bench" / "out" / "home"
PREPROCESS = ROOT.parent / "shared" / "models" / "bert_en_uncased_preprocess_3"
NOTES = "\n## Notes\n"
# "table": the levers of the main table; "finetune": fine-tuning precision end to end, its own section.
GROUPS = ("table", "finetune")


def _train(data: tuple[str, str], runs_root: Path, *extra: str, experiment: str = "transformer-tuned") -> dict:
    """`textclf train --experiment EXPERIMENT ...` in a child process; its metrics."""
    exe = Path(sys.executable).with_name("textclf")
    cmd = [str(exe), "train", "--experiment", experiment, "--experiments-file", str(ROOT / "experiments.yaml"),
           "--data", data[0], "--eval-data", data[1], "--runs-root", str(runs_root), *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from textclf.runs import Run

    metrics = Run((runs_root / "latest").resolve()).metrics
    return {"train_examples_per_second": metrics["train_examples_per_second"], "accuracy": metrics["accuracy"]}


def _worker(kind: str, arg: str) -> dict:
    """Measurements that need their own process (graph rewrites are process-wide)."""
    workers = {"minilm-steps": _minilm_steps, "tokenizers": _tokenizers, "bucketing": _bucketing}
    if kind not in workers:
        raise SystemExit(f"unknown worker {kind}")
    return workers[kind](arg)


def _minilm_steps(arg: str) -> dict:
    """MiniLM fine-tuning examples/s at `precision:batch` (textclf's own precision path)."""
    precision, batch = arg.split(":")
    import numpy as np

    from textclf._tf import keras
    from textclf.config import RuntimeConfig
    from textclf.models.bert.model import build_bert
    from textclf.models.bert.params import BertParams
    from textclf.runtime import setup_runtime

    setup_runtime(RuntimeConfig(precision=precision), int(batch))  # textclf's own precision path

    keras.utils.set_random_seed(0)
    model = build_bert(BertParams(encoder="minilm", trainable=True), num_classes=4).model
    model.compile(optimizer=keras.optimizers.Adam(5e-5), loss="sparse_categorical_crossentropy")
    b, length, n = int(batch), 48, 640  # 48 tokens ≈ ag7600's mean WordPiece length + [CLS]/[SEP]
    rng = np.random.default_rng(0)
    x, y = rng.integers(1000, 20000, size=(n, length)).astype(np.int32), rng.integers(0, 4, size=n)
    model.fit(x[: 2 * b], y[: 2 * b], batch_size=b, verbose=0)  # tracing
    start = time.perf_counter()
    model.fit(x, y, batch_size=b, verbose=0)
    return {"train_examples_per_second": n / (time.perf_counter() - start)}


def _tokenizers(arg: str) -> dict:
    """The hub and fast WordPiece tokenizers on the texts of the data specs in `arg`: seconds, mismatches."""
    from textclf._tf import tf
    from textclf.data.sources import load_examples
    from textclf.models.bert.model import wordpiece_layer

    texts = []
    for spec in json.loads(arg):
        texts += load_examples(spec).texts.astype(str).tolist()
    out = {"texts": len(texts)}
    ids = {}
    for name in ("hub", "fast"):
        layer = wordpiece_layer(str(PREPROCESS), name)
        layer(tf.constant(texts[:64]))  # first-call setup off the clock
        start = time.perf_counter()
        ids[name] = [r for i in range(0, len(texts), 4096) for r in layer(tf.constant(texts[i:i + 4096])).to_list()]
        out[f"{name}_seconds"] = time.perf_counter() - start
    out["mismatches"] = sum(a != b for a, b in zip(ids["hub"], ids["fast"]))
    return out


def _bucketing(arg: str) -> dict:
    """transformer-tuned examples/s with length-bucketed batches or every row padded to max_length."""
    from textclf._tf import keras
    from textclf.config import DataConfig
    from textclf.data.pipeline import encode_texts, training_batches
    from textclf.data.sources import load_train_eval
    from textclf.experiments import load_experiments
    from textclf.models.transformer.model import build_transformer
    from textclf.training import TrainTimer

    *data, mode = json.loads(arg)
    train, _ = load_train_eval(DataConfig(train=data[0], eval=data[1]), seed=42)
    config = load_experiments(ROOT / "experiments.yaml").resolve("transformer-tuned", {"data": {"train": data[0]}})
    t = config.training
    keras.utils.set_random_seed(0)
    built = build_transformer(config.model_params, num_classes=len(train.label_names), train_texts=train.texts)
    ids = encode_texts(train.texts, built.encode)
    if mode == "bucketed":
        source, bucket = ids, True
    else:  # every row padded to 128: the RaggedTensor keeps the zeros as tokens
        from textclf._tf import tf

        source = tf.RaggedTensor.from_tensor(ids.to_tensor(0, shape=[None, config.model_params.max_length]))
        bucket = False
    batches = training_batches(source, train.labels, global_batch_size=t.global_batch_size, seed=t.seed,
                               bucket=bucket, repeat=True)
    model = built.model
    model.compile(optimizer=keras.optimizers.Adam(t.learning_rate), loss="sparse_categorical_crossentropy",
                  steps_per_execution=t.steps_per_execution)
    model.fit(batches.dataset, epochs=1, steps_per_epoch=batches.steps, verbose=0)
    timer = TrainTimer()
    model.fit(batches.dataset, epochs=2, steps_per_epoch=batches.steps, callbacks=[timer], verbose=0)
    return {"train_examples_per_second": 2 * len(train) / timer.train_seconds}


def _child(kind: str, arg: str, tmp: Path) -> dict:
    """One worker of this script in its own process (benchlib.run_child); what it measured."""
    out = tmp / f"{kind}-{abs(hash(arg))}.json"
    child = run_child([sys.executable, __file__, "--worker", kind, arg, str(out)], result=out, show_errors=True)
    if child["code"]:
        raise SystemExit(f"worker {kind} exited {child['code']}")
    return child["result"]


FINETUNE = "MiniLM fine-tune (minilm-finetune recipe, 1 epoch)"


def finetune_section(args, data, runs: Path, group, rows: list[dict]) -> None:
    """Fine-tuning precision end to end: float32 vs mixed_bfloat16, `--finetune-rounds` paired rounds.

    Writes the `finetune-precision` section of --markdown (below its Notes, so a full re-run keeps it).
    """
    from benchlib import write_section

    from textclf.models import store
    from textclf.models.bert.params import BertParams
    from textclf.runtime import choose_precision, detect_devices

    if store.find("minilm") is None:
        raise SystemExit("the finetune group needs the imported minilm (bench/run.py or bench/peers.py imports it)")
    auto = choose_precision("auto", detect_devices(), "default",
                            cpu_bf16_model=BertParams(encoder="minilm", trainable=True).cpu_bf16)
    first = len(rows)
    group(FINETUNE, {p: ["--precision", p] for p in ("float32", "mixed_bfloat16")},
          lambda extra, r: _train(data, runs, "--seed", str(42 + r), "--set", "training.epochs=1", *extra,
                                  experiment="minilm-finetune"), rounds=args.finetune_rounds)
    f32, bf16 = rows[first:first + 2]
    speedup = bf16["train_examples_per_second"] / f32["train_examples_per_second"]
    lines = [
        "## Fine-tuning precision, end to end (`bench/levers.py --groups finetune`)",
        "",
        f"    python bench/levers.py {' '.join(sys.argv[1:])}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M')}: `textclf train --experiment minilm-finetune --set training.epochs=1 "
        f"--precision P` on ag7600, {args.finetune_rounds} rounds, the two settings alternating (the order flips "
        "every round), round r with seed 42 + r on both sides. Train ex/s counts training steps only.",
        "",
        "| precision | train ex/s, per round | mean ± sd | eval acc, per round | mean ± sd |",
        "|---|---|---|---|---|",
    ]
    for r in (f32, bf16):
        lines.append(f"| {r['setting']} | {', '.join(f'{x:.1f}' for x in r['runs'])} | {r['speed_mean']:.1f} ± "
                     f"{r['speed_sd']:.1f} | {', '.join(f'{x:.2f}%' for x in r['accuracies'])} | "
                     f"{100 * r['accuracy']:.2f}% ± {r['accuracy_sd_pt']:.2f} |")
    gap = bf16["accuracy_vs_default_pt"]
    wins = bf16["faster_in_rounds"]
    lines += ["", f"mixed_bfloat16 vs float32: {speedup:.2f}× the median speed, faster in {wins} rounds, "
              f"{gap:+.2f} pt accuracy (float32's own sd {f32['accuracy_sd_pt']:.2f} pt). "
              f"`--precision auto` fine-tunes in **{auto}** on this machine (`textclf.runtime.choose_precision`)."]
    write_section(args.markdown, "finetune-precision", "\n".join(lines))
    print(f"wrote the finetune-precision section of {args.markdown}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=2, help="rounds per group, settings alternating")
    parser.add_argument("--finetune-rounds", type=int, default=3,
                        help="rounds of the end-to-end fine-tuning group (round r: seed 42 + r on both sides)")
    parser.add_argument("--groups", default=",".join(GROUPS),
                        help="what to measure: `table` (the main table, rewritten) and/or `finetune` (fine-tuning "
                             "precision end to end, its own section of the file)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "levers.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "PERF-LEVERS.md"))
    return parser


def _summaries(seen: dict[str, list[dict]]) -> list[tuple[str, dict, bool]]:
    """Each setting's numbers over its rounds (median speed, mean accuracy, both against the first setting,
    textclf's default): (name, numbers, whether it is the default)."""
    base, out = None, []
    for name, results in seen.items():
        speeds = [x["train_examples_per_second"] for x in results]
        numbers = {"train_examples_per_second": statistics.median(speeds),
                   "runs": [round(x, 1) for x in speeds]}
        if len(results) > 2:
            numbers["speed_mean"], numbers["speed_sd"] = statistics.mean(speeds), statistics.stdev(speeds)
        if "accuracy" in results[0]:
            numbers["accuracy"] = statistics.mean(x["accuracy"] for x in results)
            if len(results) > 1:
                numbers["accuracy_sd_pt"] = 100 * statistics.stdev(x["accuracy"] for x in results)
                numbers["accuracies"] = [round(100 * x["accuracy"], 2) for x in results]
        base = base or numbers
        numbers["speed_vs_default"] = numbers["train_examples_per_second"] / base["train_examples_per_second"]
        if "accuracy" in numbers:
            numbers["accuracy_vs_default_pt"] = 100 * (numbers["accuracy"] - base["accuracy"])
        if numbers is not base:  # paired rounds: the setting's speed over the default's, round by round
            numbers["faster_in_rounds"] = (f"{sum(a > b for a, b in zip(speeds, base['runs']))}"
                                           f"/{len(speeds)}")
        out.append((name, numbers, numbers is base))
    return out


def _publish(args, rows: list[dict]) -> None:
    """The rows as JSON and as docs/PERF-LEVERS.md's table (its hand-written notes kept)."""
    from textclf.runtime import cpu_bf16_features

    result = {"command": "python bench/levers.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M"),
              "cpu_bf16_features": cpu_bf16_features(), "cpu_count": os.cpu_count(), "rounds": args.rounds,
              "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Performance levers", "", "Each lever measured with and without, by one command on one machine:", "",
             f"    {result['command']}", "",
             f"{result['date']}, {os.cpu_count()} cores, CPU bf16 features: "
             f"{', '.join(result['cpu_bf16_features']) or 'none'}. Transformer rows train the `transformer-tuned` "
             "experiment on ag7600 (default: float32, no XLA, batch 128, bucketing); the MiniLM frozen rows train the "
             "`minilm-frozen` experiment on ag7600; MiniLM fine-tune rows time fine-tuning steps on 640 random "
             "48-token examples.", "",
             f"Rounds: {args.rounds} (transformer round r uses seed 42 + r).", "",
             "| lever | setting | train ex/s (median) | vs default | eval acc (mean) | vs default | other |",
             "|---|---|---|---|---|---|---|"]
    shown = ("lever", "setting", "train_examples_per_second", "accuracy", "speed_vs_default", "accuracy_vs_default_pt")
    for r in rows:
        other = ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items() if k not in shown
        )
        speed, acc = r.get("train_examples_per_second"), r.get("accuracy")
        ratio, delta = r.get("speed_vs_default"), r.get("accuracy_vs_default_pt")
        lines.append(f"| {r['lever']} | {r['setting']} | {'' if speed is None else f'{speed:,.0f}'} | "
                     f"{'' if ratio is None else f'{ratio:.2f}×'} | {'' if acc is None else f'{100 * acc:.2f}%'} | "
                     f"{'' if delta is None else f'{delta:+.2f} pt'} | {other} |")
    lines += ["", "Defaults are chosen from these numbers: a lever becomes the default only when it is faster "
              "in every round at no accuracy cost. On CPUs with bf16 instructions that holds for BERT "
              "encoders, frozen (the rows below) and fine-tuned (the finetune-precision section), which get "
              "mixed_bfloat16; the other models stay float32 (see "
              "`textclf.runtime.choose_precision`).", ""]
    markdown = Path(args.markdown)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    # Hand-written observations (other commands, caveats) below NOTES survive a re-run.
    kept = markdown.read_text(encoding="utf-8").partition(NOTES)[2] if markdown.exists() else ""
    markdown.write_text("\n".join(lines) + (NOTES + kept if kept else ""), encoding="utf-8")
    print(f"wrote {args.json} and {args.markdown}")


def _table_groups(data, tmp: Path, runs: Path, group, row) -> None:
    """The main table's levers: each `group` of settings measured in alternating rounds, rows by `row`."""
    from textclf.models import store
    from textclf.runtime import cpu_bf16_features

    train = lambda extra, r: _train(data, runs, "--seed", str(42 + r), *extra)  # noqa: E731
    group("transformer", {"float32, batch 128": ["--precision", "float32"],
                          "mixed_bfloat16": ["--precision", "mixed_bfloat16"],
                          "XLA (--jit-compile)": ["--precision", "float32", "--jit-compile"],
                          "batch 64": ["--batch-size", "64"], "batch 256": ["--batch-size", "256"]}, train)
    group("transformer length bucketing", {"bucketed (per-batch padding)": "bucketed",
                                           "every batch padded to 128": "padded_128"},
          lambda how, r: _child("bucketing", json.dumps([*data, how]), tmp))
    if store.find("minilm") is not None:
        frozen = {p: ["--precision", p] for p in ("float32", "mixed_bfloat16")}
        if cpu_bf16_features():  # --precision auto's choice for a frozen encoder comes first (the default)
            frozen = dict(reversed(frozen.items()))
        group("MiniLM frozen (minilm-frozen recipe)", frozen,
              lambda extra, r: _train(data, runs, "--seed", str(42 + r), *extra, experiment="minilm-frozen"))
        group("MiniLM fine-tune steps", {"float32, batch 32": "float32:32", "mixed_bfloat16": "mixed_bfloat16:32",
                                         "batch 16": "float32:16", "batch 64": "float32:64"},
              lambda how, r: _child("minilm-steps", how, tmp))
    specs = [data[0], data[1]] + [
        f"tsv:{ROOT.parent / 'shared/data/sst2' / f}" for f in ("train.tsv.gz", "dev.tsv")
    ]
    if PREPROCESS.exists():
        tok = _child("tokenizers", json.dumps(specs), tmp)
        row("WordPiece tokenization (ag7600 + SST-2)", "hub preprocessing tokenize", seconds=tok["hub_seconds"],
            texts=tok["texts"])
        row("WordPiece tokenization (ag7600 + SST-2)", "tf-text FastBertTokenizer (default)",
            seconds=tok["fast_seconds"], texts=tok["texts"], mismatches=tok["mismatches"])


def main() -> None:
    args = _parser().parse_args()
    groups = set(args.groups.split(","))
    if not groups or groups - set(GROUPS):
        raise SystemExit(f"--groups: choose from {', '.join(GROUPS)}")
    os.environ.setdefault("TEXTCLF_HOME", str(HOME))
    if args.worker:
        kind, arg, out = args.worker
        Path(out).write_text(json.dumps(_worker(kind, arg)))
        return
    from benchlib import write_split


    train_csv, eval_csv = write_split(ROOT / "bench" / "out" / "ag7600")
    data = (f"csv:{train_csv}", f"csv:{eval_csv}")
    rows: list[dict] = []

    def row(lever: str, setting: str, **numbers) -> None:
        rows.append({"lever": lever, "setting": setting, **numbers})
        shown = ", ".join(f"{k} {v:,.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in numbers.items())
        print(f"{lever:<44} {setting:<34} {shown}", flush=True)

    def group(lever: str, settings: dict[str, object], measure, rounds: int | None = None) -> None:
        """Every setting measured once per round, alternating (the order flips every round); the first
        setting is textclf's default."""
        seen: dict[str, list[dict]] = {name: [] for name in settings}
        for r in range(rounds or args.rounds):
            for name in (list(settings) if r % 2 == 0 else list(reversed(settings))):
                seen[name].append(measure(settings[name], r))
                print(f"  {lever} / {name} round {r + 1}: {seen[name][-1]}", flush=True)
        for name, numbers, default in _summaries(seen):
            row(lever, name + (" (default)" if default else ""), **numbers)

    with tempfile.TemporaryDirectory(prefix="textclf-levers-") as tmp:
        tmp = Path(tmp)
        runs = tmp / "runs"
        if "finetune" in groups:
            finetune_section(args, data, runs, group, rows)
        if "table" not in groups:
            return
        _table_groups(data, tmp, runs, group, row)

    _publish(args, rows)


if __name__ == "__main__":
    main()
