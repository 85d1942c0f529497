"""Cold `textclf predict "headline"`: process start to exit, per kind of run, in one invocation.

Trains one run of each kind on ag7600 (the transformer, ngram-linear, and MiniLM imported
from ../shared — a frozen run: prediction loads the same encoder + head as a fine-tuned one),
or takes `--run KIND=DIR`. Then `--rounds` rounds, each running every command once in turn
(the order rotating by round): `python -c pass` (the interpreter), `import textclf._tf` (what
TensorFlow + tf_keras cost), and `textclf predict "…" --run DIR` for each run. Reports the
median over the rounds; bounds: BERT ≤ 4 s, transformer and n-gram ≤ 2.5 s. Writes JSON and
the `cold-predict` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/cold_predict.py                 # ≈ 4 min on 2 cores
    .venv/bin/python bench/cold_predict.py --run bert=runs/latest --rounds 9
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ag7600 import ROOT, publish, write_section, write_split  # noqa: E402

TEXTCLF = Path(sys.executable).parent / "textclf"
HEADLINE = "Oil prices jump as OPEC cuts output"
TRAIN = {"transformer": ["--model", "transformer", "--epochs", "1"], "ngram-linear": ["--model", "ngram-linear"],
         "bert": ["--experiment", "minilm-frozen", "--set", "training.epochs=1"]}
BOUNDS = {"transformer": 2.5, "ngram-linear": 2.5, "bert": 4.0}


def train(kind: str, data: tuple[str, str], root: Path) -> Path:
    runs_root = root / kind
    subprocess.run([str(TEXTCLF), "train", *TRAIN[kind], "--experiments-file", str(ROOT / "experiments.yaml"),
                    "--data", data[0], "--eval-data", data[1], "--runs-root", str(runs_root)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (runs_root / "latest").resolve()


def seconds(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="KIND=DIR",
                        help=f"use this run for KIND ({', '.join(TRAIN)}) instead of training one")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "cold_predict.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--from-json", metavar="PATH", help="only rewrite the Markdown section from a saved result")
    args = parser.parse_args()
    if args.from_json:
        write_section(args.markdown, "cold-predict", markdown(json.loads(Path(args.from_json).read_text())))
        return
    os.environ.setdefault("TEXTCLF_HOME", str(ROOT / "bench" / "out" / "home"))
    given = dict(r.split("=", 1) for r in args.run if "=" in r)
    if len(given) != len(args.run) or set(given) - set(TRAIN):
        parser.error(f"--run takes KIND=DIR with KIND one of {', '.join(TRAIN)}")
    with tempfile.TemporaryDirectory(prefix="textclf-cold-") as tmp:
        train_csv, eval_csv = write_split(ROOT / "bench" / "out" / "ag7600")
        runs = {}
        for kind in TRAIN:
            if kind in given:
                runs[kind] = Path(given[kind])
                continue
            if kind == "bert":
                from run import _ensure_minilm

                _ensure_minilm()
            print(f"training a {kind} run", flush=True)
            runs[kind] = train(kind, (f"csv:{train_csv}", f"csv:{eval_csv}"), Path(tmp))
        commands = {"python -c pass": [sys.executable, "-c", "pass"],
                    "import textclf._tf": [sys.executable, "-c", "import textclf._tf"],
                    **{f"predict, {kind} run": [str(TEXTCLF), "predict", HEADLINE, "--run", str(d)]
                       for kind, d in runs.items()}}
        times: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                times[name].append(seconds(commands[name]))
            print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f}" for n, t in times.items()), flush=True)
    rows = [{"command": name, "median_seconds": statistics.median(t), "runs": [round(x, 2) for x in t]}
            for name, t in times.items()]
    verdicts = []
    for kind, bound in BOUNDS.items():
        if kind in runs:
            median = statistics.median(times[f"predict, {kind} run"])
            verdicts.append(f"{kind}: {median:.2f} s (bound ≤ {bound} s: {'met' if median <= bound else 'MISSED'})")
    result = {"command": "python bench/cold_predict.py " + " ".join(sys.argv[1:]), "rounds": args.rounds,
              "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows, "verdicts": verdicts}
    publish(result, args.json, args.markdown, "cold-predict", markdown(result))


def markdown(result: dict) -> str:
    rows = result["rows"]
    tf_import = next((r["median_seconds"] for r in rows if r["command"] == "import textclf._tf"), None)
    lines = ["## Cold predict (`bench/cold_predict.py`)", "", "Produced by one command; every number below was "
             "measured by it:", "", f"    {result['command']}", "",
             f"2 cores, {result['date']}. `textclf predict \"{HEADLINE}\" --run DIR`, process start to "
             f"exit; {result['rounds']} rounds, each command once per round, the order rotating; medians. The runs "
             "were trained on ag7600 (BERT: MiniLM, the same encoder + head a fine-tuned run loads). The last "
             "column divides by the TensorFlow import measured in the same rounds, which says how much of a "
             "command is textclf's on a machine of any speed.", "",
             "| command | median s | per round | ÷ import textclf._tf |", "|---|---|---|---|"]
    lines += [f"| {r['command']} | {r['median_seconds']:.2f} | {', '.join(f'{x:.2f}' for x in r['runs'])} | "
              f"{r['median_seconds'] / tf_import:.2f} |" if tf_import else
              f"| {r['command']} | {r['median_seconds']:.2f} | {', '.join(f'{x:.2f}' for x in r['runs'])} | |"
              for r in rows]
    lines += [""] + [f"- {v}" for v in result["verdicts"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
