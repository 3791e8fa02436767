"""Home-folder rules shared by the local spawner and the course tools.

One naming rule maps a hub user to a folder name (`workdir_name`), and one check
says which folders on the way to a home an account may not enter
(`unreachable_dirs`). Pure, and free of JupyterHub imports, so the course tools
and the CLI use them without importing a spawner.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import quote


def workdir_name(username: str) -> str:
    """A folder name for a hub user: reversible, no path separators, never hidden or `..`.

    >>> workdir_name("student1"), workdir_name("a/b c"), workdir_name("..")
    ('student1', 'a%2Fb%20c', '%2E.')
    """
    name = quote(username, safe="@-_.")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name


def unreachable_dirs(
    path: Path, uid: int, gids: Iterable[int], stat_fn: Callable[[str], os.stat_result] = os.stat
) -> list[Path]:
    """Existing folders on the way to `path` (itself included) that uid/gids may not enter."""
    gids = set(gids)
    blocked = []
    for folder in [path, *path.parents]:
        try:
            st = stat_fn(str(folder))
        except FileNotFoundError:
            continue
        if uid == 0:
            continue
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in gids:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            blocked.append(folder)
    return blocked
