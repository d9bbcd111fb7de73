"""A facebias command's end (facebias.shutdown): the exit status, what was printed, the threads and the exit handlers
are those of a normal exit; only the interpreter's finalization is skipped (and kept with FACEBIAS_FULL_EXIT=1)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from facebias.shutdown import FULL_EXIT_ENV, exit_status

PROGRAM = """
import atexit, sys, threading, time
from facebias.shutdown import end_process

class Finalized:
    def __del__(self):
        sys.stdout.write("finalized\\n")

KEPT = Finalized()
atexit.register(lambda: sys.stdout.write("exit handler\\n"))
threading.Thread(target=lambda: (time.sleep(0.5), sys.stdout.write("thread done\\n"))).start()
sys.stdout.write("buffered, no newline;")
end_process(3)
"""
"""Ends with status 3 while a thread that is not a daemon still sleeps, an exit handler is registered, stdout holds
unflushed text (a pipe is block-buffered) and a module global has a finalizer that only the interpreter's
finalization runs."""


def _environment(full_exit: bool) -> dict[str, str]:
    """This process's environment, with FACEBIAS_FULL_EXIT=1 or without it."""
    env = {key: value for key, value in os.environ.items() if key != FULL_EXIT_ENV}
    return {**env, FULL_EXIT_ENV: "1"} if full_exit else env


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=60)


def test_the_process_ends_with_its_status_output_thread_and_exit_handlers_but_no_finalization() -> None:
    result = _run(_environment(full_exit=False))
    assert result.returncode == 3, result.stderr
    assert result.stdout == "buffered, no newline;thread done\nexit handler\n"
    assert result.stderr == ""


def test_a_full_exit_finalizes_the_interpreter_as_python_does() -> None:
    result = _run(_environment(full_exit=True))
    assert result.returncode == 3, result.stderr
    assert result.stdout == "buffered, no newline;thread done\nexit handler\nfinalized\n"


@pytest.mark.parametrize(("code", "status", "printed"), [(None, 0, ""), (0, 0, ""), (2, 2, ""), ("bye", 1, "bye\n")])
def test_exit_status_is_pythons(code: object, status: int, printed: str, capsys: pytest.CaptureFixture) -> None:
    assert exit_status(SystemExit(code)) == status
    assert capsys.readouterr().err == printed


@pytest.mark.parametrize(("body", "status", "stderr"), [("return 4", 4, ""), ("return None", 0, ""),
                                                         ("raise SystemExit('bye')", 1, "bye\n")])
def test_a_commands_process_ends_with_the_status_its_main_gave(body: str, status: int, stderr: str) -> None:
    program = (f"from facebias.shutdown import as_process\ndef main():\n    print('done')\n    {body}\n"
               "as_process(main)()")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (status, "done\n", stderr)


FROZEN_EXIT_PROGRAM = """
import atexit, sys
from facebias.shutdown import freeze_heap_at_exit

class InACycle:
    def __init__(self, name):
        self.name, self.itself = name, self
    def __del__(self):
        sys.stdout.write(f"finalized {self.name}\\n")

HELD = InACycle("held before the exit")
atexit.register(lambda: InACycle("left by an exit handler"))
freeze_heap_at_exit()
freeze_heap_at_exit()
atexit.register(lambda: sys.stdout.write("exit handler\\n"))
sys.exit(3)
"""
"""A sweep job's process whose end is not facebias': an object in a reference cycle held when the process exits (only
the finalization's garbage collection finalizes it), exit handlers registered before and after
`freeze_heap_at_exit`, one of which leaves such an object as garbage after the freeze."""


@pytest.mark.parametrize(("full_exit", "finalized"), [
    (False, "finalized left by an exit handler\n"),
    (True, "finalized left by an exit handler\nfinalized held before the exit\n")])
def test_a_frozen_heap_at_exit_skips_only_the_collection_of_what_was_held_then(full_exit: bool, finalized: str) -> None:
    result = subprocess.run([sys.executable, "-c", FROZEN_EXIT_PROGRAM], capture_output=True, text=True, timeout=60,
                            env=_environment(full_exit))
    assert (result.returncode, result.stderr) == (3, "")
    assert result.stdout == "exit handler\n" + finalized
