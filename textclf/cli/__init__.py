"""The `textclf` command: one Typer app; commands import TensorFlow only when they run."""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup

from textclf.errors import TextclfError


class TextclfGroup(TyperGroup):
    """Maps every failure to one readable line on stderr and a non-zero exit code.

    TextclfError (bad data, config, model, run) -> exit 1; usage errors -> exit 2;
    interrupts -> 130; anything unexpected -> one line, exit 1 (TEXTCLF_DEBUG=1 re-raises).
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except TextclfError as err:
            code = _fail(str(err), 1)
        except KeyboardInterrupt:
            code = _fail("interrupted", 130)
        except BrokenPipeError:
            code = 0
        except Exception as err:
            code = _click_exit(err)
        else:
            code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _click_exit(err: Exception) -> int:
    """Exit code for click's exceptions (typer may vendor click, so match them by shape)."""
    kind = type(err).__name__
    if kind == "Exit":  # --help, --version: already printed
        return int(getattr(err, "exit_code", 0) or 0)
    if kind == "Abort":
        return _fail("interrupted", 130)
    if hasattr(err, "format_message") and hasattr(err, "exit_code"):  # usage and bad-parameter errors
        return _fail(err.format_message(), int(err.exit_code or 2))
    if os.environ.get("TEXTCLF_DEBUG"):
        raise err
    msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return _fail(f"unexpected {kind}: {msg} (set TEXTCLF_DEBUG=1 for the traceback)", 1)


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
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    """Each command module owns its Typer app (one file per command); this puts them together."""
    from textclf.cli import evaluate, experiments, export, models, predict, report, runs, train, tune

    for commands in (train, evaluate, predict, export, report, tune):
        app.add_typer(commands.app)
    app.add_typer(models.app, name="models")
    app.add_typer(runs.app, name="runs")
    app.add_typer(experiments.app, name="experiments")


_register()


def main() -> None:
    """Console-script entry point."""
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
