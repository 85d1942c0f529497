"""Shared fixtures: small AG-layout data files and a tiny, fast transformer config."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
# Tiny model sizes: the CLI path is real, the training is seconds.
TINY = ["--embed-dim", "8", "--num-heads", "1", "--ff-dim", "8", "--max-length", "16",
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


@pytest.fixture
def ag_files(tmp_path: Path) -> tuple[Path, Path]:
    """train.csv (40/class) and eval.csv (10/class) in AG News layout with classes.txt."""
    d = tmp_path / "ag"
    return write_csv(d / "train.csv", ag_rows(40, seed=1)), write_csv(d / "eval.csv", ag_rows(10, seed=2))
