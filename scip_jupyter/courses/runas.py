"""Run a function as the owner of a student's folder, never as root.

The instructor CLI runs as root on the embedded platform, but a student's
course folder is the student's: a link they made must not let root write
elsewhere. So class-wide operations run in a fresh Python process started as the
folder owner's uid/gid (no supplementary groups), never with `fork()` from the
caller: the course service is threaded, and a forked child can inherit a lock
another thread held and hang for ever. Each call has a timeout; the worker is
killed when it passes it.

What goes to the worker is pickled by root (trusted); what comes back is plain
JSON, since a process running as the student must not be able to hand root a
pickle to load.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

#: Seconds one worker may take (a class-wide sync runs one worker per student).
DEFAULT_TIMEOUT = 120.0
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class RunAsError(RuntimeError):
    pass


def owner_of(path: str | os.PathLike) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


def _child_env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/", "LANG": os.environ.get("LANG", "C.UTF-8")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, os.environ.get("PYTHONPATH", "")) if p)
    for key in ("SCIP_LANG", "LANGUAGE", "LC_ALL", "SCIP_COURSE_CACHE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def call_as(owner: tuple[int, int] | None, fn: Callable[..., Any], *args, timeout: float = DEFAULT_TIMEOUT, **kwargs) -> Any:
    """`fn(*args, **kwargs)` as `owner` (uid, gid) when we are root and owner is not; else in-process.

    `fn` must be importable by name (a module-level function) and return plain
    JSON data. Raises RunAsError when the worker fails, returns something else,
    or takes longer than `timeout` seconds (it is killed).
    """
    if owner is None or os.geteuid() != 0 or owner[0] == 0:
        return fn(*args, **kwargs)
    uid, gid = owner
    payload = pickle.dumps((fn.__module__, fn.__qualname__, args, kwargs))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "scip_jupyter.courses.runas"],
            input=payload, capture_output=True, timeout=timeout, cwd="/", env=_child_env(),
            user=uid, group=gid, extra_groups=[], umask=0o022,
        )
    except subprocess.TimeoutExpired:
        raise RunAsError(f"worker for uid {uid} did not finish within {timeout:g} s; it was stopped") from None
    except OSError as exc:
        raise RunAsError(f"worker for uid {uid} could not start: {exc}") from None
    try:
        kind, value = json.loads(proc.stdout.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, TypeError):
        tail = proc.stderr.decode("utf-8", "replace").strip()[-500:]
        raise RunAsError(f"worker for uid {uid} exited with status {proc.returncode} and no result: {tail}") from None
    if kind != "ok":
        raise RunAsError(str(value))
    return value


def call_as_owner_of(path: str | os.PathLike, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Run as the owner of `path` (the student's notebook root)."""
    return call_as(owner_of(Path(path)), fn, *args, **kwargs)


def _worker() -> None:
    """The worker's side: read (module, name, args, kwargs) from stdin, print `[kind, value]` as JSON."""
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the work prints must not corrupt the result
    try:
        module, name, args, kwargs = pickle.loads(sys.stdin.buffer.read())
        fn: Any = importlib.import_module(module)
        for part in name.split("."):
            fn = getattr(fn, part)
        value = fn(*args, **kwargs)
        try:
            text = json.dumps(["ok", value])
        except (TypeError, ValueError):
            text = json.dumps(["error", f"{name} returned {type(value).__name__}, not plain data (JSON)"])
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        text = json.dumps(["error", f"{type(exc).__name__}: {exc}"])
    out.write(text)
    out.flush()


if __name__ == "__main__":
    _worker()
