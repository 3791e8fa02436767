"""Where a student stands in a course, read from their course folder.

- material version delivered (the manifest) vs the current one: update available?
- files the student changed (their version is kept by every sync)
- course notebooks opened (recorded by the server extension when JupyterLab
  opens them) and executed (a saved notebook with executed code cells)

`folder_status` is the only reader; it never follows a link out of the folder
and reads at most a few MB per notebook. Everything else is pure.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

from .material import PROGRESS_NAME, file_hash
from .sync import read_manifest, safe_relpath

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
MAX_PROGRESS_ENTRIES = 2000


def course_folder(root: str | os.PathLike, course_id: str) -> Path:
    """The course folder inside a student's notebook root: `<root>/courses/<id>`."""
    return Path(root) / "courses" / course_id


@dataclass
class StudentStatus:
    username: str
    course: str
    delivered_version: str = ""
    current_version: str = ""
    synced_at: str = ""
    changed: list[str] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    executed: list[str] = field(default_factory=list)
    notebooks: list[str] = field(default_factory=list)
    last_activity: str = ""
    server: str = ""
    error: str = ""
    #: when the service last received this student's report (UTC, ISO); "" = never (reports.py)
    reported_at: str = ""

    @property
    def update_available(self) -> bool:
        return bool(self.current_version) and self.delivered_version != self.current_version

    @property
    def never_synced(self) -> bool:
        return not self.delivered_version

    def to_dict(self) -> dict:
        out = asdict(self)
        out["update_available"] = self.update_available
        return out


def _inside(path: Path, root: Path) -> bool:
    try:
        real_root, real = root.resolve(), path.resolve()
    except OSError:
        return False
    return real == real_root or real_root in real.parents


def notebook_executed(path: Path) -> bool:
    """A saved notebook with at least one executed code cell."""
    try:
        if path.is_symlink() or path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return False
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    cells = nb.get("cells") if isinstance(nb, dict) else None
    return any(
        isinstance(c, dict) and c.get("cell_type") == "code" and c.get("execution_count") is not None
        for c in (cells or [])
    )


def read_progress(folder: Path) -> dict[str, dict]:
    """Opened notebooks recorded by the server extension: path -> {first, last, count}."""
    path = folder / PROGRESS_NAME
    try:
        if path.is_symlink():
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict) and safe_relpath(k)}


def record_opened(folder: Path, rel: str, now: dt.datetime | None = None) -> bool:
    """Note that the student opened `rel` (a path inside the course folder). Returns True when recorded."""
    if not safe_relpath(rel) or not folder.is_dir():
        return False
    now = now or dt.datetime.now(dt.timezone.utc)
    stamp = now.isoformat(timespec="seconds")
    data = read_progress(folder)
    entry = data.get(rel) or {"first": stamp, "count": 0}
    entry["last"] = stamp
    entry["count"] = int(entry.get("count", 0)) + 1
    data[rel] = entry
    if len(data) > MAX_PROGRESS_ENTRIES:
        return False
    tmp = folder / (PROGRESS_NAME + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, folder / PROGRESS_NAME)
    return True


def folder_status(
    username: str, course_id: str, folder: str | os.PathLike, material: Mapping[str, str], current_version: str
) -> StudentStatus:
    """Status of one student's course folder against the current material."""
    folder = Path(folder)
    status = StudentStatus(username, course_id, current_version=current_version)
    status.notebooks = sorted(p for p in material if p.endswith(".ipynb"))
    if not folder.is_dir() or folder.is_symlink():
        return status
    manifest = read_manifest(folder)
    status.delivered_version = manifest.version
    status.synced_at = manifest.synced_at
    for rel, delivered in sorted(manifest.files.items()):
        target = folder / rel
        if target.is_file() and _inside(target, folder) and not target.is_symlink() and file_hash(target) != delivered:
            status.changed.append(rel)
    opened = read_progress(folder)
    for rel in status.notebooks:
        target = folder / rel
        if not _inside(target, folder):
            continue
        if notebook_executed(target):
            status.executed.append(rel)
        if rel in opened or rel in status.executed:
            status.opened.append(rel)
    return status


def notebook_state(status: StudentStatus, notebook: str) -> str:
    """One word per notebook for tables: executed > opened > delivered > missing."""
    if notebook in status.executed:
        return "executed"
    if notebook in status.opened:
        return "opened"
    return "not opened"

