"""Distillation: a fine-tuned MiniLM teacher's accuracy in a fast student (issue 32).

Per data set (ag7600; SST-2: train.tsv.gz / dev.tsv): the teacher (MiniLM imported from ../shared and
fine-tuned with textclf's recipe, validated and calibrated on 10% of the training data; `--teacher
DATASET=RUN` reuses one), the default (`textclf train` with no --model: ngram-linear on these sets), and
students (`textclf distill TEACHER --student MODEL`) of each `--students` model, with the transfer set as
the training texts alone (`--augment 0`) and as textclf's default (augmented copies for a small set — a
large one, such as SST-2's, gets none, and its default student is the `--augment 0` one; the transformer
also with its word embeddings started from the teacher's, `--embeddings teacher`), `--seeds` seeds each
(the default and the students; the teacher once). A `minilm-lN` student is a smaller encoder: the first N layers of
the MiniLM checkpoint the teacher was fine-tuned from (`textclf models import-hf … --layers N`), trained for the
teacher's epochs on the training texts (no augmented variant), and alone, without the teacher. Then, per
side: accuracy mean ± sd over the seeds; warm predict texts/s (the run's predictor as `textclf predict`
loads it — its twin — on up to 2,000 eval texts after a warm-up batch); cold `textclf predict "…"`
(process start to exit); each the median of `--rounds`, the sides taking turns; both by textclf.speed
(what `runs compare --speed` shows). Runs are kept under bench/out/distill/ and reused when complete.
Writes JSON and the `distill` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/distill.py                                 # ≈ 2 h on 2 cores
    .venv/bin/python bench/distill.py --datasets ag7600 --teacher ag7600=runs/latest --seeds 3
    .venv/bin/python bench/distill.py --datasets sst2 --students minilm-l3
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT, publish, study_parser, train_eval_specs

from textclf.runs import is_complete

OUT = ROOT / "bench" / "out" / "distill"
TEXTCLF = [sys.executable, "-m", "textclf"]
TEACHER_EPOCHS = {"ag7600": 3, "sst2": 1}  # the recipe's 3; SST-2's 67k texts: one epoch (issue 32)


def textclf(*args, env=None) -> None:
    """One textclf command, its output shown; a failure stops the benchmark."""
    done = subprocess.run([*TEXTCLF, *map(str, args)], cwd=ROOT, env=env)
    if done.returncode:
        raise SystemExit(f"textclf {' '.join(map(str, args[:3]))} … failed ({done.returncode})")


def environment(students: list[str]) -> dict:
    """TEXTCLF_HOME with MiniLM imported (from ../shared) for the teachers, and each `minilm-lN` student: its
    first N layers (`models import-hf --layers N`)."""
    home = Path(os.environ.get("TEXTCLF_HOME") or OUT / "home")
    os.environ["TEXTCLF_HOME"] = str(home)  # the measurements' processes too
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    minilm = ROOT.parent / "shared" / "models" / "all-MiniLM-L6-v2"
    for name in ["minilm", *students]:
        layers = re.fullmatch(r"minilm(?:-l(\d+))?", name)
        if layers and not (home / "models" / name).exists():
            textclf("models", "import-hf", minilm, "--name", name,
                    *(["--layers", layers.group(1)] if layers.group(1) else []), env=env)
    return env


def train_sides(dataset: str, teacher: str | None, students: list[str], seeds: int, env: dict) -> dict:
    """Every run of one data set, by side: {side: [run dirs]} (complete runs under OUT are reused)."""
    train, evaluation = train_eval_specs(dataset)
    folder = OUT / dataset
    if teacher is None:
        teacher = str(folder / "teacher")
        if not is_complete(Path(teacher)):
            textclf("train", "--model", "minilm", "--epochs", TEACHER_EPOCHS[dataset], "--data", train,
                    "--eval-data", evaluation, "--set", "training.validation_fraction=0.1", "--run-dir", teacher,
                    env=env)
    sides = {"teacher (MiniLM fine-tuned)": [Path(teacher)]}
    commands = {"default (ngram-linear)": lambda seed, out: ["train", "--data", train, "--eval-data", evaluation,
                                                               "--seed", seed, "--run-dir", out]}
    copies = augment_copies(train)
    for student in students:
        encoder = student.startswith("minilm-l")  # a smaller encoder (MiniLM's first layers): the teacher's epochs
        # textclf's default transfer set: the training texts alone when they are many (no augmented copies)
        variants = [(["--augment", 0], "training texts")] + ([([], "augmented")] if copies and not encoder else [])
        epochs = ["--epochs", TEACHER_EPOCHS[dataset]] if encoder else []
        if student == "transformer":  # its word embeddings from the teacher's (a BERT's WordPiece rows)
            variants.append((["--embeddings", "teacher"],
                             f"{'augmented' if copies else 'training texts'}, teacher's embeddings"))
        for extra, label in variants:
            commands[f"{student} student ({label})"] = (
                lambda seed, out, s=student, x=extra, e=tuple(epochs): ["distill", teacher, "--student", s, "--seed",
                                                                        seed, "--run-dir", out, *x, *e])
        commands[f"{student} (no teacher)"] = (
            lambda seed, out, s=student, e=tuple(epochs): ["train", "--model", s, "--data", train, "--eval-data",
                                                           evaluation, "--seed", seed, "--run-dir", out, *e])
    for side, command in commands.items():
        sides[side] = []
        for seed in range(42, 42 + seeds):
            out = folder / f"{re.sub(r'[^a-z0-9]+', '-', side.lower()).strip('-')}-s{seed}"
            if not is_complete(out):
                textclf(*command(seed, out), env=env)
            sides[side].append(out)
    return sides


def augment_copies(train: str) -> int:
    """The augmented copies per training text textclf's default transfer set makes for this data (0: a
    student with the defaults is the `--augment 0` one, not trained twice)."""
    from textclf.config import DistillConfig
    from textclf.data.sources import load_examples
    from textclf.distillation import augment_count

    return augment_count(DistillConfig(), len(load_examples(train)), 0)


def measure(dataset: str, sides: dict, rounds: int) -> list[dict]:
    """Accuracy over the seeds; warm texts/s and cold predict seconds of each side's first run (textclf.speed,
    as `runs compare --speed` measures them)."""
    from textclf.runs import Run
    from textclf.speed import measure as speed

    firsts = [runs[0] for runs in sides.values()]
    measured = speed(firsts, rounds)
    rows = []
    for i, (side, runs) in enumerate(sides.items()):
        accuracy = [Run(run).metrics["accuracy"] * 100 for run in runs]
        rows.append({"dataset": dataset, "side": side, "seeds": len(runs), "accuracy": statistics.mean(accuracy),
                     "sd": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0, "accuracies": accuracy,
                     "warm_texts_per_second": measured["predict_texts_per_second"][i],
                     "cold_predict_seconds": measured["cold_predict_seconds"][i], "runs": [str(r) for r in runs]})
        print(f"{dataset:7} {side:40} {rows[-1]['accuracy']:6.2f} ± {rows[-1]['sd']:.2f}  "
              f"{rows[-1]['warm_texts_per_second']:9.0f} texts/s  {rows[-1]['cold_predict_seconds']:.2f} s", flush=True)
    return rows


def table(rows: list[dict], command: str) -> str:
    lines = ["## Distillation: the encoder's accuracy in a fast student", "",
             f"`{command}` — 2 cores, {time.strftime('%Y-%m-%d %H:%M')}. Accuracy: mean ± sd over the seeds on the "
             "eval data (ag7600's 1,600 rows, SST-2's 872-row dev set); warm: the run's predictor (its twin) on the "
             "eval texts after a warm-up batch; cold: `textclf predict \"…\"`, process start to exit; each the median "
             "of the rounds, the sides taking turns (the side's first seed).", "",
             "| data | side | seeds | accuracy % | warm texts/s | cold predict s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['side']} | {r['seeds']} | {r['accuracy']:.2f} ± {r['sd']:.2f} | "
              f"{r['warm_texts_per_second']:,.0f} | {r['cold_predict_seconds']:.2f} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_parser(__doc__, OUT / "distill.json")
    parser.add_argument("--students", default="transformer,ngram-mlp")
    parser.add_argument("--teacher", action="append", default=[], metavar="DATASET=RUN")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    teachers = dict(t.split("=", 1) for t in args.teacher)
    env = environment(args.students.split(","))
    rows = []
    for dataset in args.datasets.split(","):
        sides = train_sides(dataset, teachers.get(dataset), args.students.split(","), args.seeds, env)
        rows += measure(dataset, sides, args.rounds)
    command = "python bench/distill.py " + " ".join(sys.argv[1:])
    publish({"benchmark": "distill", "command": command, "rows": rows}, args.json, args.markdown, "distill",
            table(rows, command))


if __name__ == "__main__":
    main()
