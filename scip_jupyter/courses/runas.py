"""Run a function as the owner of a student's folder, never as root.

The instructor CLI runs as root on the embedded platform, but a student's
course folder is the student's: a link they made must not let root write
elsewhere. So class-wide operations fork, drop to the folder owner's uid/gid in
the child, do the work there, and send the result back through a pipe.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Callable


class RunAsError(RuntimeError):
    pass


def owner_of(path: str | os.PathLike) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_uid, st.st_gid


def call_as(owner: tuple[int, int] | None, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """`fn(*args, **kwargs)` as `owner` (uid, gid) when we are root and owner is not; else in-process."""
    if owner is None or os.geteuid() != 0 or owner[0] == 0:
        return fn(*args, **kwargs)
    uid, gid = owner
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges for good, work, report, exit without cleanup handlers
        code = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            os.umask(0o022)
            try:
                payload = ("ok", fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                payload = ("error", f"{type(exc).__name__}: {exc}")
            data = pickle.dumps(payload)
            with os.fdopen(write_fd, "wb") as f:
                f.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RunAsError(f"worker for uid {uid} exited with status {status} and no result")
    kind, value = pickle.loads(data)
    if kind == "error":
        raise RunAsError(value)
    return value


def call_as_owner_of(path: str | os.PathLike, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """Run as the owner of `path` (the student's notebook root)."""
    return call_as(owner_of(Path(path)), fn, *args, **kwargs)
