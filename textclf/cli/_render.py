"""Shared rich rendering helpers for the CLI."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

# Piped or redirected output is read later, often in a wide editor: don't fold tables to 80
# columns there. A terminal (or $COLUMNS) sets the width itself.
# markup=False, emoji=False: what textclf prints holds user text, class names and paths, printed as
# written (`predict "[/] oops"` raised MarkupError, `:train:` in an error became an emoji); styling is
# asked for explicitly with styled(), whose data parts are escaped.
class _Stdout(Console):
    """stdout's console: a reader that went away (`| head`) ends the command quietly, as any write to stdout
    does (rich's own handling exits 1, which `set -o pipefail` takes for a failure)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError()


out = _Stdout(soft_wrap=False, width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160,
              markup=False, emoji=False)
err = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)


def styled(markup: str, *data: Any) -> Any:
    """Rich markup with `data` (user text, class names, paths) put in as written: `styled("[bold]{}[/]", x)`."""
    from rich.text import Text

    return Text.from_markup(markup.format(*(escape(str(d)) for d in data)), emoji=False)


# A control character (NUL, a newline, a tab, ESC…) in a cell has no width of its own: the terminal moves the
# cursor or draws nothing, and the row no longer lines up. A cell shows each as its Unicode control picture.
CONTROL_PICTURES = {**{c: 0x2400 + c for c in range(0x20)}, 0x7F: 0x2421}


class Table(RichTable):
    """A rich Table whose string cells are shown as they are — texts, labels, names are data, never
    markup (`[/]` in a text broke predict), their control characters as visible pictures (␀, ␊); a styled
    cell is given as `styled(...)`."""

    def add_row(self, *cells, **kw):
        from rich.text import Text

        super().add_row(*(Text(c.translate(CONTROL_PICTURES)) if isinstance(c, str) else c for c in cells), **kw)


def error(message: str) -> None:
    """One red line on stderr (never wrapped, so scripts can grep it)."""
    err.print(styled("[bold red]error:[/] {}", message), soft_wrap=True, highlight=False)


RUN_HELP = ("A run: its directory, its name, the end of its name, a model or experiment name (its newest "
            "complete run); default: the latest complete run.")


def one_run(positional: str | None, option: str | None) -> str | None:
    """The run named by the positional argument or --run (both accepted by every command that reads a run)."""
    from textclf.errors import ConfigError

    if positional is not None and option is not None and positional != option:
        raise ConfigError(f"two runs given ({positional} and --run {option}); give one")
    return option if option is not None else positional


# Where run and group summaries go: stdout, or stderr when the command's stdout is one JSON document
# (`experiments run --json`, `tune --json`: nothing but the JSON on stdout).
SUMMARIES = [out]


def json_output() -> None:
    """This command prints JSON on stdout: the summaries of its runs go to stderr."""
    SUMMARIES[0] = err


def json_line(obj: Any) -> None:
    """Exactly one JSON document on one stdout line (no rich markup or wrapping)."""
    import sys

    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def run_with_progress(train_fn):
    """Run `train_fn(listener)` under a progress display, then print the run summary."""
    with ProgressListener() as listener:
        result = train_fn(listener)
    run_summary(result)
    return result


def train_and_show(**settings):
    """textclf.training.train with its progress drawn (per member of a group) and its summary printed."""
    from textclf.training import GroupResult, train

    with ProgressListener() as listener:  # a group's members draw their own (run_member): it stays idle
        result = train(**settings, listener=listener, each=run_member)
    group_summary(result) if isinstance(result, GroupResult) else run_summary(result)
    return result


class ProgressListener:
    """Training progress: on a terminal one rich progress bar per epoch with running loss and
    accuracy; otherwise (a log, a pipe, CI) one plain line per epoch, written when it ends."""

    WORK_EVERY = 10.0  # seconds between the plain lines of a long step when not on a terminal
    BAR_AFTER = 1.0  # a step done sooner shows no bar on a terminal

    def __init__(self, hold: bool = True) -> None:
        self.hold = hold  # status lines wait for training to start (a data error alone is one line)

    def __enter__(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.live = err.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=err, transient=False,
        )
        self.task = None
        self.work: dict[str, Any] = {}  # long step -> its task (terminal) or [started, last line, lines] (plain)
        self.seen: dict[str, float] = {}  # long step -> when it was first reported (terminal)
        self.epoch_started = time.perf_counter()
        self.pending: list[str] | None = [] if self.hold else None  # status lines before training starts
        return self

    def __exit__(self, *exc):
        if self.progress.live.is_started:
            self.progress.stop()
        return False

    def _line(self, text, **kwargs) -> None:
        self.progress.console.print(text, **kwargs)
        if not self.live:
            self.progress.console.file.flush()  # a log shows it now, and keeps it if the run is killed

    def on_status(self, message: str) -> None:
        if not self.live and self.pending is not None:
            # Written once training starts: bad data before that ends in its one error line alone.
            self.pending.append(styled("[dim]{}…[/]", message))
            return
        self._line(styled("[dim]{}…[/]", message))

    def on_start(self, info: dict) -> None:
        self.info = info
        for line in self.pending or []:
            self._line(line)
        self.pending = None
        if self.live:
            self.progress.start()  # only now: a failure while loading data prints just its error line
        self._line(f"training on {info['train_examples']:,} examples, evaluating on {info['eval_examples']:,} "
                   f"({len(info['labels'])} classes) → {info['run_dir']}")
        self._line(info["runtime"])
        for note in info.get("notes", []):
            self._line(note, highlight=False)
        if info.get("initial_epoch"):
            self._line(f"resuming after epoch {info['initial_epoch']} of {info['epochs']}")
        self.epoch_started = time.perf_counter()

    def on_note(self, line: str) -> None:
        self._flush_pending()  # the status lines before it come first
        self._line(line, highlight=False)

    def _flush_pending(self) -> None:
        for line in self.pending or []:
            self._line(line)
        self.pending = None

    def on_batch(self, epoch: int, step: int, logs: dict) -> None:
        if not self.live:
            return
        if self.task is None:
            self.task = self.progress.add_task(f"epoch {epoch + 1}/{self.info['epochs']}", total=self.info["steps"],
                                               extra="")
        self.progress.update(self.task, completed=step,
                             extra=f"loss {logs.get('loss', 0.0):.4f}  acc {logs.get('accuracy', 0.0):.4f}")

    def on_work(self, what: str, done: int, total: int) -> None:
        """A long step's progress (frozen features, n-gram features, ...): a bar with an estimate on a
        terminal; else a line every WORK_EVERY seconds, and one when it ends if it took that long."""
        if self.live:
            if what not in self.work:
                first = self.seen.setdefault(what, time.perf_counter())
                if time.perf_counter() - first < self.BAR_AFTER:
                    return
                if not self.progress.live.is_started:
                    self.progress.start()
                self.work[what] = self.progress.add_task(what, total=max(total, 1), extra="")
            self.progress.update(self.work[what], completed=done, total=max(total, 1))
            return
        now = time.perf_counter()
        started, last, lines = self.work.setdefault(what, [now, now, 0])
        if (now - last < self.WORK_EVERY) if done < total else not lines:
            return
        self._flush_pending()  # the status lines so far come first
        self.work[what][1:] = [now, lines + 1]
        elapsed = now - started
        left = f", about {_duration(elapsed * (total - done) / done)} left" if 0 < done < total else ""
        self._line(f"{what}: {done:,}/{total:,} ({100 * done / max(total, 1):.0f}%), {_duration(elapsed)}{left}",
                   highlight=False)

    def on_epoch(self, epoch: int, logs: dict) -> None:
        seconds = time.perf_counter() - self.epoch_started
        self.epoch_started = time.perf_counter()
        if not self.live:
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, (int, float)))
            self._line(f"epoch {epoch + 1}/{self.info['epochs']}  {metrics}  {seconds:.1f} s", highlight=False)
            return
        if self.task is not None:
            self.progress.update(self.task, completed=self.info["steps"],
                                 description=f"epoch {epoch + 1}/{self.info['epochs']} "
                                             f"val_acc {logs.get('val_accuracy', float('nan')):.4f}")
        self.task = None


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def calibration_cell(m: dict) -> str:
    """ECE and Brier of the run's probabilities, and how the temperature changed them."""
    cal = m.get("calibration") or {}
    text = f"ECE {m['ece']:.3f}, Brier {m['brier']:.3f}"
    if cal.get("method") == "temperature":
        t = cal["temperature"]
        t = f"{t:.3g}" if isinstance(t, (int, float)) else "per label"
        return f"{text} (temperature {t}; before: ECE {cal['before']['ece']:.3f})"
    return f"{text} (not calibrated: {cal['why']})" if cal.get("why") else text


def train_cell(m: dict) -> str:
    """The examples the model was fitted on, and how they relate to the training data's (its class counts, the
    validation part included): "5,400 of 6,000 (600 held out for validation)"."""
    fitted = m["train_examples"]
    counts = [n for n in (m.get("train_class_counts") or {}).values() if isinstance(n, int)]
    total = sum(counts) if counts and not m.get("multilabel") else None
    held = m.get("validation_examples") if isinstance(m.get("validation_examples"), int) else 0
    if total is None or fitted == total:
        return f"{fitted:,}"
    if fitted < total:
        return f"{fitted:,} of {total:,} ({total - fitted:,} held out for validation)"
    labelled = total - held  # a distilled student: its fit part, and the transfer set's added texts
    return f"{fitted:,} ({labelled:,} training texts and {fitted - labelled:,} the transfer set adds)"


def run_summary(result) -> None:
    m = result.metrics
    skews = [[c["support"] for c in m.get("per_class", []) if c["support"]],
             [n for n in (m.get("train_class_counts") or {}).values() if n]]
    if any(s and max(s) >= 3 * min(s) for s in skews):  # skewed classes: accuracy alone hides the small ones
        per_class = Table(title="per class (skewed classes)")
        for col in ("class", "precision", "recall", "F1", "support"):
            per_class.add_column(col, justify="left" if col == "class" else "right")
        for c in m["per_class"]:
            per_class.add_row(str(c["label"]), pct(c["precision"]), pct(c["recall"]), pct(c["f1"]), str(c["support"]))
        SUMMARIES[0].print(per_class)
    table = Table(title="run summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run", str(result.run_dir))
    table.add_row("model", result.info.get("model", ""))
    table.add_row("eval data", m["data"])
    if m.get("multilabel"):
        table.add_row("micro-F1", pct(m["micro_f1"]))
        table.add_row("macro-F1", pct(m["macro_f1"]))
        table.add_row("sample-F1", pct(m["samples_f1"]))
        table.add_row("subset accuracy", pct(m["accuracy"]))
        table.add_row("hamming loss", f"{m['hamming_loss']:.4f}")
        table.add_row("thresholds", ", ".join(f"{c['label']} {c['threshold']:.2f}" for c in m["per_class"]))
    else:
        table.add_row("accuracy", pct(m["accuracy"]))
        table.add_row("macro-F1", pct(m["macro_f1"]))
    if isinstance(m.get("ece"), (int, float)):
        table.add_row("calibration", calibration_cell(m))
    table.add_row("train examples", train_cell(m))
    if m.get("class_weight"):
        table.add_row("class weights", ", ".join(f"{k} {v:.3g}" for k, v in m["class_weight"].items()))
    if m.get("solver"):
        tried = ", ".join(f"{c:g}" for c in m.get("c_tried", []))
        chosen = f" (chosen on validation from {tried})" if tried else ""
        table.add_row("fit", f"{m['solver']}, C {m['c']:g}{chosen}")
    if m.get("stopped_early"):
        table.add_row("epochs", f"{m['epochs_run']} (stopped early; best epoch {m.get('best_epoch')})")
    table.add_row("training speed", f"{m['train_examples_per_second']:,.0f} examples/s")
    table.add_row("duration", f"{result.info.get('duration_seconds', 0):.1f} s")
    SUMMARIES[0].print(table)


def run_member(index: int, total: int, train_fn):
    """One run of a group: a rule, its progress and its summary."""
    err.rule(f"run {index + 1} of {total}")
    return run_with_progress(train_fn)


def group_summary(result) -> None:
    """The table that ends a group: its runs' accuracy and macro-F1 as mean ± sd and 95% interval."""
    from textclf.reports import format_proportion

    table = Table(title=f"group summary ({result.kind}, {len(result.results)} runs)", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("group", result.id)
    table.add_row("accuracy", format_proportion(result.summary["accuracy"]))
    table.add_row("macro-F1", format_proportion(result.summary["macro_f1"]))
    table.add_row("runs", ", ".join(str(r.run_dir.name) for r in result.results))
    SUMMARIES[0].print(table)

