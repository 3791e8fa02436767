"""Material sync that never loses student work: a pure plan, then an apply step.

Per path the plan looks at three hashes: M (the material now), D (what we
delivered there last, from the manifest in the student's course folder) and L
(the file there now). The rules:

| material M | delivered D | local L        | action                                             |
|------------|-------------|----------------|----------------------------------------------------|
| present    | any         | missing        | add (new material, or restore a deleted file)      |
| present    | any         | == M           | uptodate                                           |
| present    | == L        | != M           | update (the student never touched it)              |
| present    | == M        | != D           | keep (the student's edit; material unchanged)      |
| present    | other       | != D, != M     | keep the student's file, put M beside it (rename)  |
| absent     | present     | == D           | remove (material withdrawn, student never touched) |
| absent     | present     | != D           | keep, and forget it: the file is the student's now |
| absent     | present     | missing        | forget                                             |
| absent     | absent      | any            | not ours: never looked at                          |

So a file whose content differs from what we delivered (the student changed
it, or created it) is never overwritten nor deleted. `apply` re-checks each
file's hash just before it writes or deletes (compare and swap), so an edit
saved between plan and apply is kept too. `reset` moves the whole course
folder to a visible backup folder and delivers the material afresh.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping

from .material import MANIFEST_NAME, Snapshot, content_hash, file_hash, scan

MANIFEST_FORMAT = 1


class Kind(str, Enum):
    add = "add"
    update = "update"
    uptodate = "uptodate"
    keep = "keep"
    rename = "rename"  # keep the student's file, deliver material next to it
    remove = "remove"
    forget = "forget"


#: Kinds that write or delete a file.
CHANGES = frozenset({Kind.add, Kind.update, Kind.rename, Kind.remove})


@dataclass(frozen=True)
class Action:
    kind: Kind
    path: str
    #: material hash to deliver (add/update/rename), or the hash expected on disk (remove)
    hash: str = ""
    #: where the material goes for `rename`
    target: str = ""
    #: the local hash the plan saw (apply refuses to change the file if it differs)
    expect: str | None = None

    def describe(self) -> str:
        what = {
            Kind.add: "added",
            Kind.update: "updated",
            Kind.uptodate: "up to date",
            Kind.keep: "your version kept",
            Kind.rename: f"your version kept; new material saved as {self.target}",
            Kind.remove: "removed (withdrawn from the material, unchanged by you)",
            Kind.forget: "no longer tracked",
        }[self.kind]
        return f"{self.path}: {what}"


@dataclass
class Manifest:
    """What the platform delivered into one student's course folder."""

    course: str = ""
    version: str = ""
    synced_at: str = ""
    #: path -> hash delivered at that path
    files: dict[str, str] = field(default_factory=dict)
    #: path -> material hash offered beside a kept student file (so it is offered once)
    offered: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format": MANIFEST_FORMAT, **asdict(self)}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("manifest is not a JSON object")
        # The manifest lives in the student's folder, so it may hold anything: keep only
        # plain relative paths mapped to string hashes, and strings where strings belong.
        return cls(
            _text(data.get("course")), _text(data.get("version")), _text(data.get("synced_at")),
            _path_hashes(data.get("files")), _path_hashes(data.get("offered")),
        )


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _path_hashes(value) -> dict[str, str]:
    """`{path: hash}` entries of a manifest section; anything else (a list, a number) counts as empty.

    >>> _path_hashes({"a.ipynb": "00", "../x": "01", "b": ["no"]}), _path_hashes([]), _path_hashes("x")
    ({'a.ipynb': '00'}, {}, {})
    """
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str) and safe_relpath(k)}


@dataclass(frozen=True)
class Plan:
    course: str
    version: str
    actions: tuple[Action, ...]
    manifest: Manifest

    def by_kind(self, *kinds: Kind) -> list[Action]:
        return [a for a in self.actions if a.kind in kinds]

    @property
    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.kind in CHANGES]

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.actions:
            out[a.kind.value] = out.get(a.kind.value, 0) + 1
        return out


def clash_name(path: str, version: str, taken: set[str]) -> str:
    """Where material goes when the student's own file sits at `path`.

    >>> clash_name("week1/intro.ipynb", "3f2a1b9c0d11", set())
    'week1/intro.update-3f2a1b9.ipynb'
    >>> clash_name("notes", "3f2a1b9c0d11", {"notes.update-3f2a1b9"})
    'notes.update-3f2a1b9-2'
    """
    p = PurePosixPath(path)
    suffix = "".join(p.suffixes[-1:])
    stem = p.name[: len(p.name) - len(suffix)] if suffix else p.name
    n = 1
    while True:
        tag = f"update-{version[:7]}" + (f"-{n}" if n > 1 else "")
        name = f"{stem}.{tag}{suffix}"
        candidate = str(p.with_name(name))
        if candidate not in taken:
            return candidate
        n += 1


def plan_sync(
    course: str,
    material: Mapping[str, str],
    version: str,
    manifest: Manifest,
    local: Mapping[str, str],
) -> Plan:
    """Decide, without touching anything, how to bring `local` to `material`.

    `local` is every file in the student's course folder (path -> hash).
    """
    actions: list[Action] = []
    files: dict[str, str] = {}
    offered: dict[str, str] = {}
    taken = set(local) | set(material)
    for path in sorted(set(material) | set(manifest.files)):
        m, d, l = material.get(path), manifest.files.get(path), local.get(path)
        if m is not None:
            if l is None:
                actions.append(Action(Kind.add, path, m, expect=None))
                files[path] = m
            elif l == m:
                actions.append(Action(Kind.uptodate, path, m, expect=l))
                files[path] = m
            elif d is not None and l == d:
                actions.append(Action(Kind.update, path, m, expect=l))
                files[path] = m
            elif d == m or manifest.offered.get(path) == m:
                # the student's edit of material we already gave them (at path or beside it)
                actions.append(Action(Kind.keep, path, m, expect=l))
                if d is not None:
                    files[path] = d
                if manifest.offered.get(path) == m:
                    offered[path] = m
            else:
                target = _existing_copy(path, m, version, local) or clash_name(path, version, taken)
                taken.add(target)
                actions.append(Action(Kind.rename, path, m, target=target, expect=local.get(target)))
                if d is not None:
                    files[path] = d
                offered[path] = m
        elif d is not None:
            if l is None:
                actions.append(Action(Kind.forget, path))
            elif l == d:
                actions.append(Action(Kind.remove, path, d, expect=l))
            else:
                actions.append(Action(Kind.keep, path, expect=l))
                actions.append(Action(Kind.forget, path))
    new = Manifest(course, version, "", files, offered)
    return Plan(course, version, tuple(actions), new)


def _existing_copy(path: str, m: str, version: str, local: Mapping[str, str]) -> str | None:
    """A copy of this material already beside the student's file (idempotent re-runs)."""
    first = clash_name(path, version, set())
    stem = first.rsplit(".", 1)[0] if PurePosixPath(path).suffix else first
    for candidate, h in local.items():
        if h == m and candidate.startswith(stem):
            return candidate
    return None


# -- apply: the only part that touches files ---------------------------------


@dataclass
class Result:
    course: str
    version: str
    applied: list[Action] = field(default_factory=list)
    #: actions not carried out because the file changed after planning (kept), or failed
    skipped: list[tuple[Action, str]] = field(default_factory=list)
    backup: str = ""

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.applied:
            out[a.kind.value] = out.get(a.kind.value, 0) + 1
        if self.skipped:
            out["skipped"] = len(self.skipped)
        return out

    def to_dict(self) -> dict:
        return {
            "course": self.course,
            "version": self.version,
            "summary": self.summary(),
            "changes": [a.describe() for a in self.applied if a.kind in CHANGES or a.kind is Kind.keep],
            "skipped": [f"{a.path}: {why}" for a, why in self.skipped],
            "backup": self.backup,
        }


def read_manifest(folder: str | os.PathLike) -> Manifest:
    path = Path(folder) / MANIFEST_NAME
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Manifest()
    except (ValueError, OSError):
        # A damaged manifest must not cost student work: with no record of what
        # we delivered, every existing file counts as the student's.
        return Manifest()


def safe_relpath(rel: str) -> bool:
    """A path we may create or delete inside a course folder: relative, no '..', nothing hidden.

    >>> [safe_relpath(p) for p in ("a/b.ipynb", "../x", "/etc/passwd", "a/.git/config", "")]
    [True, False, False, False, False]
    """
    if not rel or rel.startswith("/") or "\\" in rel or any(ord(ch) < 32 or ord(ch) == 127 for ch in rel):
        return False
    parts = rel.split("/")
    return all(p and p not in (".", "..") and not p.startswith(".") for p in parts)


def _inside(path: Path, root: Path) -> bool:
    """True when `path` (which may not exist yet) resolves inside `root`: no symlink leads out."""
    real_root = root.resolve()
    real = path.resolve()
    return real == real_root or real_root in real.parents


def _atomic_write(dest: Path, data: bytes, root: Path) -> None:
    if not _inside(dest.parent, root):
        raise OSError(f"refusing to write through a link leaving the course folder: {dest}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(dest.parent, root) or dest.is_symlink():
        raise OSError(f"refusing to write through a link: {dest}")
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".scip-sync-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current(dest: Path) -> str | None:
    if dest.is_symlink():
        return "(symlink)"  # never equal to a hash: a link is always the student's
    return file_hash(dest) if dest.is_file() else None


def apply_plan(plan: Plan, source: str | os.PathLike, dest: str | os.PathLike, now: dt.datetime | None = None) -> Result:
    """Carry out a plan: copy material from `source` into the course folder `dest`.

    Each write/delete first re-checks the file's hash against what the plan saw;
    if the student changed it meanwhile, the action is skipped (their file wins).
    Run it as the folder's owner (see `courses.runas`), never as root.
    """
    source, dest = Path(source), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    result = Result(plan.course, plan.version)
    manifest = Manifest(plan.course, plan.version, "", dict(plan.manifest.files), dict(plan.manifest.offered))
    # removals first: material that turned from a folder into a file (or back) lands in the same sync
    for action in sorted(plan.actions, key=lambda a: a.kind is not Kind.remove):
        target = dest / (action.target or action.path)
        try:
            if not safe_relpath(action.target or action.path):
                raise RuntimeError("not a plain relative path: left alone")
            if action.kind in (Kind.add, Kind.update, Kind.rename):
                blocker = _in_the_way(target, dest)
                if blocker:
                    raise _Blocked(blocker)
                if _current(target) != action.expect:
                    raise _Changed()
                if action.expect != action.hash:  # a rename whose copy is already there writes nothing
                    data = (source / action.path).read_bytes()
                    if content_hash(data) != action.hash:
                        raise RuntimeError("material changed during the sync; run it again")
                    _atomic_write(target, data, dest)
            elif action.kind is Kind.remove:
                if _current(target) != action.expect or not _inside(target.parent, dest):
                    raise _Changed()
                target.unlink()
                _prune_empty_dirs(target.parent, dest)
            result.applied.append(action)
        except _Changed:
            result.skipped.append((action, "changed by you during the sync: your version kept"))
            _undo_manifest(manifest, plan, action)
        except _Blocked as exc:
            result.skipped.append((action, str(exc)))
            _undo_manifest(manifest, plan, action)
        except (OSError, RuntimeError) as exc:
            result.skipped.append((action, str(exc)))
            _undo_manifest(manifest, plan, action)
    manifest.synced_at = (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    _atomic_write(dest / MANIFEST_NAME, manifest.to_json().encode(), dest)
    return result


class _Changed(Exception):
    pass


class _Blocked(Exception):
    pass


def _in_the_way(target: Path, dest: Path) -> str:
    """What of the student's stands where material should go ("" when nothing does).

    A folder (or link) at the target, or a file at one of its parents: the material
    is not delivered there and the student's file or folder is kept.
    """
    rel = target.relative_to(dest).as_posix()
    if target.is_symlink() and not target.is_file():
        return f"{rel}: your link is in the way: your link kept"
    if target.is_dir():
        _prune_empty_dirs(target, dest)  # an empty folder holds no work: the material takes its place
        if target.is_dir():
            return f"{rel}: your folder is in the way: your folder kept"
    parent = target.parent
    while parent != dest and dest in parent.parents:
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            what = "link" if parent.is_symlink() else "file"
            return f"{parent.relative_to(dest).as_posix()}: your {what} is in the way of {rel}: your {what} kept"
        parent = parent.parent
    return ""


def _undo_manifest(manifest: Manifest, plan: Plan, action: Action) -> None:
    """An action not carried out must not be recorded as delivered."""
    if action.kind in (Kind.add, Kind.update):
        manifest.files.pop(action.path, None)
    elif action.kind is Kind.rename:
        manifest.offered.pop(action.path, None)


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def local_files(dest: str | os.PathLike) -> dict[str, str]:
    return scan(dest)


def sync_folder(course: str, snap: Snapshot, dest: str | os.PathLike, dry_run: bool = False) -> tuple[Plan, Result | None]:
    """Plan and (unless dry_run) apply one student's sync."""
    dest = Path(dest)
    plan = plan_sync(course, snap.files, snap.version, read_manifest(dest), local_files(dest))
    if dry_run:
        return plan, None
    return plan, apply_plan(plan, snap.root, dest)


def backup_name(dest: Path, now: dt.datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    candidate = dest.with_name(f"{dest.name}.backup-{stamp}")
    n = 2
    while candidate.exists():
        candidate = dest.with_name(f"{dest.name}.backup-{stamp}-{n}")
        n += 1
    return candidate


def reset_folder(course: str, snap: Snapshot, dest: str | os.PathLike, now: dt.datetime | None = None) -> Result:
    """Move the course folder aside (a visible backup beside it) and deliver the material afresh."""
    dest = Path(dest)
    now = now or dt.datetime.now(dt.timezone.utc)
    backup = ""
    if dest.exists() and any(dest.iterdir()):
        target = backup_name(dest, now)
        os.rename(dest, target)  # same folder, so atomic; nothing is copied or lost
        backup = str(target)
    plan = plan_sync(course, snap.files, snap.version, Manifest(), {})
    result = apply_plan(plan, snap.root, dest, now)
    result.backup = backup
    return result


def backups(dest: str | os.PathLike) -> Iterable[Path]:
    dest = Path(dest)
    return sorted(dest.parent.glob(f"{dest.name}.backup-*")) if dest.parent.is_dir() else []
