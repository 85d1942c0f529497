"""Work in forked processes: the one place textclf forks (liblinear's fits).

A process forked for a piece of work inherits the parent's memory without a copy, runs on a core
of its own, and sends its result back pickled through a pipe. A forked child also starts from the
parent's state of any library-global generator (liblinear's dual solver draws its visiting order
from one), which is what makes its fits repeat exactly. (The n-gram features were measured in
forked processes too, and stayed on threads: see ngram_features._in_parallel.)
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from typing import Any, Callable

from textclf.errors import TextclfError

_FORK = threading.Lock()  # one pipe + fork at a time: a child must not inherit another task's pipe


class Children(set):
    """The pids of running children; once `closed` (kill), no new one is started."""

    closed = False


def in_fresh_process(children: set, what: str, fn: Callable, *args) -> Any:
    """fn(*args) in a child forked for it alone (its result pickled back through a pipe), its pid in
    `children` while it runs; where this system cannot fork, here. `what` names the work in errors."""
    if not hasattr(os, "fork"):
        return fn(*args)
    with _FORK:
        if getattr(children, "closed", False):  # stopped (Ctrl-C, an error) before this task began
            raise TextclfError(f"{what} was stopped")
        try:
            read, write = os.pipe()
            pid = os.fork()
        except OSError as err:
            raise TextclfError(f"cannot start a process for {what} ({err.strerror or err}); "
                               "free some memory or processes and try again") from None
        if pid:
            children.add(pid)
            os.close(write)
    if pid == 0:  # the child: compute, write, leave without running the parent's exit handlers
        code = 0
        try:
            os.close(read)
            try:
                data = pickle.dumps(("ok", fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as err:  # noqa: BLE001 - handed to the parent, which raises it
                data, code = pickle.dumps(("error", f"{type(err).__name__}: {err}")), 1
            with os.fdopen(write, "wb") as out:
                out.write(data)
        finally:
            os._exit(code)
    try:
        with os.fdopen(read, "rb") as src:
            data = src.read()
    finally:
        _, status = os.waitpid(pid, 0)
        children.discard(pid)
    code = os.waitstatus_to_exitcode(status)
    if code < 0 or not data:  # killed (e.g. by the kernel when memory ran out)
        raise TextclfError(f"{what} was stopped by signal {-code} (out of memory?); "
                           "train on fewer or shorter texts, or with --model ngram-mlp") from None
    kind, value = pickle.loads(data) if code == 0 else ("error", "the process failed")
    if kind != "ok":
        raise TextclfError(f"{what} failed: {str(value)[:200]}")
    return value


def kill(children: set) -> None:
    """Stop these children now and start no more for them (an interrupt, an error elsewhere)."""
    with _FORK:  # no fork is under way: every child started is in the set
        if isinstance(children, Children):
            children.closed = True
    for pid in list(children):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
