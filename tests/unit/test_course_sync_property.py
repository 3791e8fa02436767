"""Property: over any sequence of instructor updates and student edits, a sync
never overwrites or deletes a file the student changed.

Each example runs the real plan + apply on real folders (a material folder the
"instructor" edits and a course folder the "student" edits). Student contents
and instructor contents come from disjoint alphabets, so the test always knows
who wrote a file last.

The paths clash on purpose: `week1` is a file in some versions and a folder in
others, `README` a file the student may turn into a folder (`README/more.md`).
Material that a student's file or folder stands in the way of is not delivered
(and said so, once per sync); the student's work still wins.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scip_jupyter.courses.material import folder_snapshot, scan
from scip_jupyter.courses.sync import CHANGES, sync_folder

PATHS = ["intro.ipynb", "data.csv", "week1/lab.ipynb", "week1/notes.md", "week2/lab.ipynb", "README",
         "week1", "README/more.md", "week2/lab.ipynb/cell"]

instructor_text = st.text(alphabet="abc", min_size=0, max_size=3).map(lambda s: "I:" + s)
student_text = st.text(alphabet="xyz", min_size=0, max_size=3).map(lambda s: "S:" + s)
path = st.sampled_from(PATHS)

operation = st.one_of(
    st.tuples(st.just("publish"), path, instructor_text),
    st.tuples(st.just("withdraw"), path),
    st.tuples(st.just("edit"), path, student_text),
    st.tuples(st.just("delete"), path),
    st.tuples(st.just("edit-any"), st.integers(0, 50), student_text),  # edit whatever is there, copies too
    st.tuples(st.just("sync")),
)


def _write(root: Path, rel: str, text: str) -> None:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _publish(material: Path, rel: str, text: str) -> None:
    """The instructor restructures: whatever stands in the way of `rel` in the material goes."""
    import shutil

    parts = rel.split("/")
    for i in range(1, len(parts)):
        ancestor = material.joinpath(*parts[:i])
        if ancestor.is_file():
            ancestor.unlink()
    if (material / rel).is_dir():
        shutil.rmtree(material / rel)
    _write(material, rel, text)


def _in_the_way(rel: str, owned: dict[str, str]) -> bool:
    """A student's file is an ancestor of `rel`, or a student's file lies inside `rel` (rel is their folder)."""
    return any(rel.startswith(o + "/") or o.startswith(rel + "/") for o in owned)


def _contents(root: Path) -> dict[str, str]:
    return {rel: (root / rel).read_text() for rel in scan(root)}


def _check_after_sync(material: Path, course: Path, student_owned: dict[str, str], seen: dict[str, set[str]]) -> None:
    local = _contents(course)
    mat = _contents(material)
    # 1. the student's work is exactly where they left it
    for rel, text in student_owned.items():
        assert local.get(rel) == text, f"student file {rel} lost or overwritten: {local.get(rel)!r} != {text!r}"
    # 2. material the student did not change is current (unless their file or folder is in its way)
    for rel, text in mat.items():
        if rel not in student_owned and not _in_the_way(rel, student_owned):
            assert local.get(rel) == text, f"{rel} not updated"
    for rel, text in local.items():
        if rel in student_owned or mat.get(rel) == text:
            continue
        # only copies of material offered beside a student's file (they are the student's to keep)
        assert ".update-" in rel and text.startswith("I:"), f"stray file {rel}={text!r}"
    # 3. new material beside a kept student file is offered (once per material version)
    for rel, text in mat.items():
        if _in_the_way(rel, student_owned):
            continue
        if rel in student_owned:
            offered = seen.setdefault(rel, set())
            assert text in local.values() or text in offered, f"update of {rel} never offered"
            if text in local.values():
                offered.add(text)
        else:
            seen.setdefault(rel, set()).add(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=1, max_size=25))
def test_sync_never_loses_student_work(ops):
    with tempfile.TemporaryDirectory() as tmp:
        material, course = Path(tmp, "material"), Path(tmp, "home", "courses", "c1")
        material.mkdir()
        _write(material, "intro.ipynb", "I:start")
        student_owned: dict[str, str] = {}  # path -> what the student last wrote there
        seen: dict[str, set[str]] = {}
        for op in [("sync",), *ops, ("sync",)]:
            kind = op[0]
            if kind == "publish":
                _publish(material, op[1], op[2])
            elif kind == "withdraw":
                if (material / op[1]).is_file():
                    (material / op[1]).unlink()
            elif kind == "edit":
                if not _blocked(course, op[1]):
                    _write(course, op[1], op[2])
                    student_owned[op[1]] = op[2]
            elif kind == "edit-any":
                files = sorted(_contents(course))
                if files:
                    rel = files[op[1] % len(files)]
                    _write(course, rel, op[2])
                    student_owned[rel] = op[2]
            elif kind == "delete":
                if (course / op[1]).is_file():
                    (course / op[1]).unlink()
                    student_owned.pop(op[1], None)
            else:
                plan, result = sync_folder("c1", folder_snapshot(material), course)
                # only material a student's file or folder stands in the way of is left out, and said so
                for action, why in result.skipped:
                    assert _in_the_way(action.target or action.path, student_owned), (action, why)
                    assert "in the way" in why and "kept" in why, why
                _check_after_sync(material, course, student_owned, seen)
                # 4. a sync right after a sync changes nothing more
                again, _ = sync_folder("c1", folder_snapshot(material), course, dry_run=True)
                assert all(_in_the_way(a.target or a.path, student_owned) for a in again.changes), again.changes


def _blocked(root: Path, rel: str) -> bool:
    """The student cannot write `rel`: it is a folder there, or one of its parents is a file."""
    parts = rel.split("/")
    return (root / rel).is_dir() or any(root.joinpath(*parts[:i]).is_file() for i in range(1, len(parts)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(path, instructor_text), min_size=1, max_size=8), st.lists(st.tuples(path, student_text), max_size=5))
def test_reset_restores_material_and_backs_up_everything(published, edits):
    from scip_jupyter.courses.sync import reset_folder

    with tempfile.TemporaryDirectory() as tmp:
        material, course = Path(tmp, "material"), Path(tmp, "courses", "c1")
        material.mkdir()
        for rel, text in published:
            _publish(material, rel, text)
        sync_folder("c1", folder_snapshot(material), course)
        for rel, text in edits:
            if not _blocked(course, rel):
                _write(course, rel, text)
        before = _contents(course)
        result = reset_folder("c1", folder_snapshot(material), course)
        assert _contents(course) == _contents(material)
        if before:
            assert _contents(Path(result.backup)) == before
        assert not [a for a in result.applied if a.kind not in CHANGES]
