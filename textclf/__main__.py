"""`textclf` and `python -m textclf`: signals become one line and exit 130 / 143 from the first moment.

It runs before the CLI's own imports (Typer, rich: ≈ 0.3 s), so a Ctrl-C or SIGTERM that arrives
while they load is answered like one during a run: `error: interrupted` (130) or `error: terminated`
(143), never a traceback or a silent exit.
"""

import signal
import sys

from textclf.errors import Terminated, defer_termination, termination_pending


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    _standard_streams()
    try:
        from textclf.cli import main as run_cli

        try:
            run_cli()  # builds the commands, then runs one; it handles the interrupts inside a command itself
        except SystemExit as done:
            if done.code in (0, None) and termination_pending():  # a SIGTERM swallowed with no safe point after
                raise Terminated() from None
            raise
    except KeyboardInterrupt as err:
        terminated = isinstance(err, Terminated)
        print("error: " + ("terminated" if terminated else "interrupted"), file=sys.stderr)
        sys.exit(143 if terminated else 130)


def _standard_streams() -> None:
    """A closed stdin, stdout or stderr (`textclf … >&-`) is /dev/null: Python leaves sys.stdout None (rich failed
    at import), and the next file opened would take the free descriptor, so a print would land in it."""
    import os

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            if os.open(os.devnull, os.O_RDWR) != fd:  # the lowest free descriptor: this one (the lower are open)
                continue
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))


def _terminate(signum, frame) -> None:
    """SIGTERM ends a command like Ctrl-C: a run is marked and resumable, and one line is printed. Where an
    exception would be swallowed (a weakref callback, a __del__: "Exception ignored …" and the work goes on),
    it is deferred to the next safe point; a second SIGTERM after a raised one ends the process at once."""
    defer_termination()  # recorded either way: raised again at a safe point if this raise is swallowed
    if _swallows(frame):
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated()


def _swallows(frame) -> bool:
    """Whether `frame` runs inside a weakref callback or a __del__ (any frame up its stack), where a raised
    exception is printed as "Exception ignored" and lost."""
    import _weakrefset
    import weakref

    files = {weakref.__file__, _weakrefset.__file__}
    while frame is not None:
        if frame.f_code.co_name == "__del__" or frame.f_code.co_filename in files:
            return True
        frame = frame.f_back
    return False


if __name__ == "__main__":
    main()
