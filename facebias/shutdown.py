"""A facebias process's end: once a command is done, its exit handlers run and the process ends, without the
interpreter's own finalization (every command's `cli`, its console script, is `as_process(main)`).

With TensorFlow, Keras and MLflow loaded, Python's finalization (tearing down every module, collecting what is left,
the native libraries' destructors) took about 1.8 s of CPU after a quick-mode run had finished and its exit handlers
had run (`benchmarks/process_exit.py` measures it side by side: 1.77 s, median of 5 pairs). Nothing in it is
facebias': the records, files and logs are written before it. `end_process` does what the finalization would do for
them — Python's exit handlers (logging's flush and close, MLflow's, joblib's worker shutdown), after waiting for the
threads that are not daemons, and the standard streams' flush — and ends the process there.

A sweep job may run in a process whose end is not facebias' (a joblib worker, submitit's job process): there
`freeze_heap_at_exit` spares the finalization its garbage collections over everything the process holds, the
largest part of its cost (measured by `benchmarks/process_exit.py`). With `FACEBIAS_FULL_EXIT=1` set a process ends
the usual way instead.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

FULL_EXIT_ENV = "FACEBIAS_FULL_EXIT"
"""Set to 1 to let Python finalize the interpreter as usual when a facebias command ends."""


def full_exit_asked() -> bool:
    """Whether `FACEBIAS_FULL_EXIT=1` asks for Python's own, complete finalization."""
    return os.environ.get(FULL_EXIT_ENV) == "1"


def exit_status(request: SystemExit) -> int:
    """The exit status Python gives a `SystemExit`: 0 for None, its code if an int, else 1 (after printing the code
    to stderr, as Python does)."""
    if request.code is None:
        return 0
    if isinstance(request.code, int):
        return request.code
    print(request.code, file=sys.stderr)
    return 1


def end_process(status: int) -> NoReturn:
    """End the process with exit status `status` as the interpreter's finalization starts — other threads joined
    (`threading._shutdown`, which also ends Python's and joblib's executors), exit handlers run, standard streams
    flushed — without the rest of it."""
    join_threads = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if full_exit_asked() or join_threads is None or run_exit_handlers is None:
        raise SystemExit(status)
    join_threads()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed stream, a reader gone: nothing to flush to
            stream.flush()
    os._exit(status)


def freeze_heap_at_exit() -> None:
    """Register `gc.freeze()` as an exit handler of this process (once, however often called; it runs before the
    handlers registered earlier): the finalization that follows the handlers still tears down every module and
    runs every object's finalizer that reference counting reaches, but its garbage collections skip the objects
    that existed then (what TensorFlow, Keras and MLflow hold): an object in a reference cycle among them, or held
    only by them, is not finalized. Nothing with `FACEBIAS_FULL_EXIT=1`."""
    if full_exit_asked():
        return
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def as_process(main: Callable[[], int | None]) -> Callable[[], NoReturn]:
    """`main` as the function of a command's process (`python -m …`, its console script): run it, then
    `end_process` with the exit status it returned (None is 0) or raised as a `SystemExit`."""

    def run() -> NoReturn:
        try:
            status = main()
        except SystemExit as request:
            end_process(exit_status(request))
        end_process(status or 0)

    return run
