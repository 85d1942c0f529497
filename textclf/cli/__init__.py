"""The `textclf` command: one Typer app; commands import TensorFlow only when they run."""

from __future__ import annotations

import contextlib
import os
import sys
import types

import typer
from typer.core import TyperGroup

from typing import Annotated

from textclf.errors import Interrupted, Terminated, TextclfError


class ReaderGone(Exception):
    """The reader of stdout went away (`textclf predict --file big.txt | head -1`): not an error of the command."""


class TextclfGroup(TyperGroup):
    """Maps every failure to one readable line on stderr and a non-zero exit code.

    TextclfError (bad data, config, model, run) -> exit 1; usage errors -> exit 2;
    interrupts -> 130; anything unexpected -> one line, exit 1 (TEXTCLF_DEBUG=1 re-raises).
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from textclf.cli import _render

        _render.SUMMARIES[0] = _render.out  # a command's summaries go to stdout unless it prints JSON
        _name_values(self)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Interrupted as err:
            code = _interrupted(err.run_dir, err.terminated, err.hint)
        except TextclfError as err:
            code = _fail(str(err), 1)
        except KeyboardInterrupt as err:
            code = _interrupted(None, isinstance(err, Terminated))
        except (BrokenPipeError, ReaderGone):
            code = _quiet_broken_pipe()
        except OSError as err:  # a write to stdout or stderr: /dev/full, a dead terminal (files say their path)
            code = _output_failed(err)
        except MemoryError:
            code = _fail("out of memory: the data or the model does not fit in this machine's memory "
                         "(smaller --batch-size, --max-length or model sizes, or less data)", 1)
        except Exception as err:
            code = _click_exit(err)
        else:
            code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def make_context(self, *args, **kwargs):
        with _signals_as_interrupted():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _signals_as_interrupted():
            try:
                return super().invoke(ctx)
            except BrokenPipeError:  # as ReaderGone: click's main turns an EPIPE OSError into a silent exit 1
                raise ReaderGone() from None


@contextlib.contextmanager
def _signals_as_interrupted():
    """A Ctrl-C or SIGTERM outside a run (loading TensorFlow, reading data) is one line and 130 / 143 too.

    Typer turns any KeyboardInterrupt inside a command into a silent exit 130, also for SIGTERM; as
    Interrupted (not a KeyboardInterrupt) it reaches TextclfGroup.main like a run's interrupt.
    """
    try:
        yield
    except KeyboardInterrupt as err:
        raise Interrupted(terminated=isinstance(err, Terminated)) from None


# What an option's value is, in help screens: `--data SPEC`, `--epochs N`; a flag shows none.
_VALUE_NAMES = {"data": "SPEC", "eval_data": "SPEC", "spec": "SPEC", "unlabeled": "SPEC",
                "run": "RUN", "resume": "RUN", "run_dir": "RUN", "run_ref": "RUN", "run_refs": "RUN",
                "teacher": "RUN", "model": "MODEL", "experiment": "EXPERIMENT", "names": "EXPERIMENT",
                "texts": "TEXT", "directory": "DIR"}
_PATH_WORDS = ("plot", "curve", "out", "output", "file", "dir", "root", "path", "journal")
_TYPE_NAMES = {"int": "N", "integer": "N", "float": "X"}  # Typer's type names, and click's
_HELP_NAMES = types.SimpleNamespace(help_option_names=["-h", "--help"])  # as in the app's context_settings


def _name_values(command) -> None:
    """Give every parameter of every command a value name in place of Typer's `<str>`/`<bool>` (once), and
    every number option a refusal of nan and inf."""
    for sub in getattr(command, "commands", {}).values():
        _name_values(sub)
    helps = getattr(command, "get_help_option", lambda ctx: None)(_HELP_NAMES)
    for param in [*getattr(command, "params", ()), *([helps] if helps else [])]:
        _finite_only(param)
        if param.metavar is not None:
            continue
        if _is_choice(param):
            continue  # Typer shows the choices: `saved_model|tflite`
        if param.param_type_name == "argument":
            param.metavar = _VALUE_NAMES.get(param.name, param.name.upper())  # usage: `[RUN]...` when repeated
            param.display_type_rich = lambda ctx: None  # the name says it; Typer would add `<str>`
        elif getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        else:
            param.metavar = _value_name(param)


def _finite_only(param) -> None:
    """A number option refuses nan and ±inf (1e999 too): Python's float() takes them, and no option means them (a
    `--threshold nan` was told it "should be less than or equal to 1"; `serve --max-wait-ms inf` was taken)."""
    from typing import get_args

    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if float not in (annotation, *get_args(annotation)) or getattr(param, "_finite_only", False):
        return
    convert = param.process_value

    def process_value(ctx, value):
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, str) and not _finite(item):
                raise typer.BadParameter(f"got {item}, expected a finite number", ctx=ctx, param=param)
        return convert(ctx, value)

    param.process_value, param._finite_only = process_value, True


def _finite(text: str) -> bool:
    """False for a number that is not finite (nan, inf, 1e999); True otherwise (not a number: the option says)."""
    import math

    try:
        return math.isfinite(float(text))
    except ValueError:
        return True


def _is_choice(param) -> bool:
    desc = getattr(param, "type_descriptor", None)  # Typer >= 0.2x; older ones have click's param.type
    return bool(getattr(desc, "is_choice", False)) or hasattr(getattr(param, "type", None), "choices")


def _value_name(param) -> str:
    words = param.name.split("_")
    if param.name == "run_dir" and "--run-dir" in param.opts:  # train's: where to write, not a run to read
        return "DIR"
    if param.name in _VALUE_NAMES:
        return _VALUE_NAMES[param.name]
    if words[-1] in _PATH_WORDS or param.name in _PATH_WORDS:
        return "DIR" if words[-1] in ("dir", "root") else "PATH"
    bare = getattr(param, "bare_type", lambda: getattr(getattr(param, "type", None), "name", ""))()
    return _TYPE_NAMES.get(bare.removeprefix("list[").removesuffix("]").removesuffix(" range"), "TEXT")


def _click_exit(err: Exception) -> int:
    """Exit code for click's exceptions (typer may vendor click, so match them by shape)."""
    kind = type(err).__name__
    if kind == "Exit":  # --help, --version: already printed
        return int(getattr(err, "exit_code", 0) or 0)
    if kind == "NoArgsIsHelpError":  # bare `textclf` (or a bare group): the help, printed already, is the answer
        return 0
    if kind == "Abort":
        return _interrupted(None, False)
    if kind == "ResourceExhaustedError":  # TensorFlow: out of (device) memory, or a full disk under SaveV2
        text = str(err)
        if "No space left on device" in text:
            return _fail("cannot write: no space left on device", 1)
        return _fail("out of memory: the model does not fit in this machine's memory (smaller --batch-size, "
                     "--max-length or model sizes)", 1)
    if hasattr(err, "format_message") and hasattr(err, "exit_code"):  # usage and bad-parameter errors
        return _fail(err.format_message(), int(err.exit_code or 2))
    if os.environ.get("TEXTCLF_DEBUG"):
        raise err
    msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return _fail(f"unexpected {kind}: {msg} (set TEXTCLF_DEBUG=1 for the traceback)", 1)


def _interrupted(run_dir, terminated: bool, hint: str | None = None) -> int:
    what = "terminated" if terminated else "interrupted"
    hint = f"; {hint}" if hint else (f"; resume with textclf train --resume {run_dir}" if run_dir else "")
    return _fail(what + hint, 143 if terminated else 130)


def _output_failed(err: OSError) -> int:
    """One line for a full disk no writer of a file caught (textclf's own writes name their file: this is most
    likely its output, `textclf … >/dev/full`); what is still buffered for stdout is dropped, not flushed again
    at exit."""
    import errno

    if err.errno not in (errno.ENOSPC, errno.EDQUOT):  # errors of writing only (an EIO may be a read)
        return _click_exit(err)
    code = _fail(f"cannot write: {err.strerror or err}", 1)
    _quiet_broken_pipe()
    return code


def _quiet_broken_pipe() -> int:
    """The reader went away (`| head`): nothing more to say, and no error at exit's flush either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def _version(value: bool) -> None:
    if value:
        from textclf import __version__

        print(f"textclf {__version__}")
        raise typer.Exit()


def _fail(message: str, code: int) -> int:
    from textclf.cli._render import error

    error(message)
    return code


app = typer.Typer(
    cls=TextclfGroup,
    name="textclf",
    help="Text-classification experiments on the TensorFlow stack: train, evaluate, predict.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print textclf's version and exit.")] = False) -> None:
    """Text-classification experiments on the TensorFlow stack: train, evaluate, predict."""


def _register() -> None:
    """Each command module owns its Typer app (one file per command); this puts them together."""
    from textclf.cli import (data, distill, evaluate, experiments, export, models, predict, report, runs, serve, train,
                             tune)

    for commands in (train, distill, evaluate, predict, export, report, tune, serve):
        app.add_typer(commands.app)
    app.add_typer(models.app, name="models")
    app.add_typer(runs.app, name="runs")
    app.add_typer(experiments.app, name="experiments")
    app.add_typer(data.app, name="data")


_register()


def main() -> None:
    """Run the CLI (textclf.__main__ installs the signal handlers first)."""
    try:
        app()
    except SystemExit as done:
        code = done.code
    else:
        code = 0
    _exit(code)


def _exit(code) -> None:
    """Exit; after TensorFlow was imported, skip the interpreter's teardown.

    Tearing down a process that imported TensorFlow takes ≈ 0.8 s on a 2-core machine (module
    and C++ static destruction) and does nothing a finished command needs: every file textclf
    writes is closed by then. atexit handlers (logging, TensorBoard writers) still run.
    """
    if "tensorflow" not in sys.modules:
        sys.exit(code)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: nothing more to say
            pass
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    os._exit(code)
