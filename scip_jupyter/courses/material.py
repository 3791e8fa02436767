"""Course material as a snapshot: relative path -> sha256, plus a version.

A snapshot is taken of a local folder or of a git repository at a ref. The
version of a folder is a hash of its file list and contents (so any published
change gives a new version); the version of a git snapshot is the commit.
Hidden files, `.ipynb_checkpoints` and `__pycache__` are never material.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .registry import Course, Registry

#: Names never treated as material nor as student files.
SKIP_NAMES = frozenset({".ipynb_checkpoints", "__pycache__", ".git"})
#: The manifest the sync engine keeps in each student's course folder.
MANIFEST_NAME = ".scip-course.json"
#: Where the server extension records notebooks the student opened.
PROGRESS_NAME = ".scip-course-progress.json"
_CHUNK = 1 << 16


def file_hash(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_skipped(rel: str) -> bool:
    """Hidden or tool-generated paths (relative, '/'-separated)."""
    return any(part.startswith(".") or part in SKIP_NAMES for part in rel.split("/"))


def scan(root: str | os.PathLike, skip_dirs: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under `root` as relative posix path -> sha256 (symlinks are not followed)."""
    root = Path(root)
    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not is_skipped(d) and rel_dir + d not in skip_dirs]
        for name in filenames:
            rel = rel_dir + name
            full = Path(dirpath) / name
            if is_skipped(name) or full.is_symlink() or not full.is_file():
                continue
            out[rel] = file_hash(full)
    return out


def version_of(files: Mapping[str, str]) -> str:
    """A short, stable version for a set of files.

    >>> version_of({"a.txt": "00"}) == version_of({"a.txt": "00"}) != version_of({"a.txt": "01"})
    True
    """
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel]}\n".encode())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class Snapshot:
    """Material at one version: where its files are and their hashes."""

    root: Path
    version: str
    files: dict[str, str] = field(default_factory=dict)


def folder_snapshot(folder: str | os.PathLike) -> Snapshot:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"material folder {folder} does not exist")
    files = scan(folder)
    return Snapshot(folder, version_of(files), files)


def _git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:2])} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


def git_snapshot(url: str, ref: str, cache_dir: str | os.PathLike, subdir: str = "") -> Snapshot:
    """Fetch `ref` of `url` into a cache and check it out once per commit.

    The checkout lives in `<cache>/<commit>/` and is reused; its version is the
    commit (12 characters).
    """
    cache = Path(cache_dir)
    repo = cache / ("repo-" + hashlib.sha256(url.encode()).hexdigest()[:16])
    if not (repo / "HEAD").exists():
        repo.mkdir(parents=True, exist_ok=True)
        _git("init", "--bare", "--quiet", str(repo))
    _git("fetch", "--quiet", "--depth", "1", "--", url, ref, cwd=repo)
    commit = _git("rev-parse", "FETCH_HEAD^{commit}", cwd=repo)
    tree = cache / commit
    if not (tree / ".scip-complete").exists():
        tmp = cache / (commit + ".partial")
        tmp.mkdir(parents=True, exist_ok=True)
        _git("--work-tree", str(tmp), "checkout", "--force", commit, "--", ".", cwd=repo)
        (tmp / ".scip-complete").write_text(commit)
        if tree.exists():  # a concurrent fetch won the race; keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.rename(tree)
    root = tree / subdir if subdir else tree
    files = scan(root)
    return Snapshot(root, commit[:12], files)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scip-courses"


def snapshot(registry: Registry, course: Course, cache_dir: str | os.PathLike | None = None) -> Snapshot:
    """The current material of a course, from its folder or its git ref."""
    if course.material.path is not None:
        return folder_snapshot(registry.material_dir(course))
    return git_snapshot(course.material.git, course.material.ref, cache_dir or default_cache_dir(), course.material.subdir)
