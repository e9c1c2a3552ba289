"""Commands inside a network namespace, one way: `exec_argv` for any command, `program_argv` /
`run_program` / `start_program` for a program of ours (a module of `intercloud.lab.programs` or
`bench.programs` with a `main()`).

A program runs by its file path with `python -I`: `-I` (which implies `-P` on 3.11) keeps the
program's own directory off sys.path and ignores PYTHONPATH, so it sees only the standard
library and the interpreter's own site-packages. That lets the same way serve the OpenStack
virtualenvs' python (lab/openstack/env.py), which has no intercloud installed: `-m` would need
a PYTHONPATH to our source, which would put all of intercloud on their path too. Hence the rule
for programs: import only the standard library (and what the interpreter they are made for
ships: OpenStack's packages, httpx for the benchmark's).

Every request, token or password goes to a program on stdin, never in argv (`ps` shows argv).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intercloud.errors import IntercloudError


class LabError(IntercloudError):
    """The lab could not build, change or tear down its namespaces."""

    code = "lab_error"


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output; raise LabError with its stderr if it fails."""
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {argv[0]}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise LabError(f"{' '.join(argv)}: {detail[-1] if detail else f'exit {proc.returncode}'}")
    return proc


def exec_argv(ns: str, argv: Sequence[str]) -> list[str]:
    """argv run inside namespace `ns`."""
    return ["ip", "netns", "exec", ns, *argv]


def program_path(module: str) -> Path:
    """The file of program `module` (a dotted name, e.g. intercloud.lab.programs.http_request)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise LabError(f"no program {module}")
    return Path(spec.origin)


def program_argv(
    ns: str, module: str, *args: str, python: str | Path = sys.executable
) -> list[str]:
    """The argv that runs program `module` with `args` inside `ns` (see the module docstring)."""
    return exec_argv(ns, [str(python), "-I", str(program_path(module)), *args])


def run_program(
    ns: str,
    module: str,
    *args: str,
    input: str | None = None,
    timeout: float = 60.0,
    python: str | Path = sys.executable,
) -> subprocess.CompletedProcess[str]:
    """Run program `module` inside `ns` to its end; its output captured (never raises for its
    exit status: the caller reads what it said)."""
    return run(
        program_argv(ns, module, *args, python=python), check=False, timeout=timeout, input=input
    )


def start_program(
    ns: str, module: str, *args: str, python: str | Path = sys.executable, **popen: Any
) -> subprocess.Popen[str]:
    """Start program `module` inside `ns` (text pipes as `popen` asks); the caller waits for it."""
    return subprocess.Popen(program_argv(ns, module, *args, python=python), text=True, **popen)
