"""Shared rich rendering helpers for the CLI."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

# Piped or redirected output is read later, often in a wide editor: don't fold tables to 80
# columns there. A terminal (or $COLUMNS) sets the width itself.
out = Console(soft_wrap=False, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
err = Console(stderr=True, soft_wrap=True)


def error(message: str) -> None:
    """One red line on stderr (never wrapped, so scripts can grep it)."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)


def json_line(obj: Any) -> None:
    """Exactly one JSON document on one stdout line (no rich markup or wrapping)."""
    import sys

    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"
