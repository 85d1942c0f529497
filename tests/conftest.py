"""Shared fixtures: small AG-layout data files and a tiny, fast transformer config."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

# What textclf prints is checked as a pipe shows it (160 columns: textclf.cli._render), whoever runs the tests:
# a terminal may export COLUMNS, and pytest-xdist's workers had COLUMNS=80 (seen with xdist 3.8).
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)

SHARED = Path(__file__).resolve().parents[2] / "shared"
# Tiny model sizes: the CLI path is real, the training is seconds.
TINY = ["--model", "transformer", "--embed-dim", "8", "--num-heads", "1", "--ff-dim", "8", "--max-length", "16",
        "--vocab-size", "200", "--batch-size", "16"]

WORDS = {
    1: "war election minister border troops president parliament rebels embassy treaty".split(),
    2: "goal match striker coach season cup league champion tennis score".split(),
    3: "stocks profit shares bank oil prices merger earnings market investors".split(),
    4: "software chip internet space researchers virus computer scientists nasa phone".split(),
}


def ag_rows(n_per_class: int, seed: int = 0) -> list[list[str]]:
    """Synthetic AG-layout rows (label 1..4, title, description) with class-specific words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_per_class):
        for label, words in WORDS.items():
            title = " ".join(rng.choice(words) for _ in range(3)).title()
            desc = " ".join(rng.choice(words + ["the", "a", "of"]) for _ in range(8)) + f" #39;s \\$1 {i}"
            rows.append([str(label), title, desc])
    return rows


def write_csv(path: Path, rows: list[list[str]], classes: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    if classes:
        (path.parent / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    return path


def cli(*args, env: dict | None = None, input: str | None = None):
    """Run the real CLI in-process (typer's CliRunner) with str() of every argument."""
    from typer.testing import CliRunner

    from textclf.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env=env, input=input)


def assert_one_line_error(result, *fragments: str, code: int | None = None) -> None:
    """Exit != 0 (or `code`), no traceback, exactly one `error:` line, last, containing fragments."""
    assert result.exit_code != 0 if code is None else result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    # exactly one error line, last; progress lines may precede it once training has started
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def ag_split(root: Path, n_train: int, n_eval: int) -> tuple[Path, Path]:
    """root/ag/train.csv and eval.csv (per-class counts) with classes.txt."""
    return (write_csv(root / "ag" / "train.csv", ag_rows(n_train, seed=1)),
            write_csv(root / "ag" / "eval.csv", ag_rows(n_eval, seed=2)))


def train_tiny(root: Path, n_per_class: int = 40, epochs: int = 2) -> Path:
    """Write root/ag/train.csv and train the tiny transformer on it into root/runs via the CLI."""
    train = write_csv(root / "ag" / "train.csv", ag_rows(n_per_class, seed=1))
    result = cli("train", "--data", f"csv:{train}", "--epochs", epochs, "--runs-root", root / "runs", *TINY)
    assert result.exit_code == 0, result.output
    return train


@pytest.fixture
def ag_files(tmp_path: Path) -> tuple[Path, Path]:
    """train.csv (40/class) and eval.csv (10/class) in AG News layout with classes.txt."""
    return ag_split(tmp_path, 40, 10)
