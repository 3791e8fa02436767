"""Course panel: model <-> widget both ways, escaped HTML, and the instructor view's templates/CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from scip_jupyter.courses.panel import CourseBackendError, CoursePanelModel, LocalBackend
from scip_jupyter.courses.progress import StudentStatus
from scip_jupyter.courses.registry import Course
from scip_jupyter.courses.student import StudentSide
from scip_jupyter.courses.view import group_changes, make_rows, render_course, render_csv
from scip_widgets.course_panel import CoursePanel

SCRIPT = "<script>alert('x')</script>"
COURSES = f"""\
courses:
  - id: c1
    title: "Course {SCRIPT}"
    instructors: [teach]
    students:
      users: [alice]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""


@pytest.fixture
def side(tmp_path) -> StudentSide:
    (tmp_path / "material").mkdir()
    (tmp_path / "material" / "intro.ipynb").write_text("v1")
    (tmp_path / "courses.yaml").write_text(COURSES)
    (tmp_path / "home").mkdir()
    return StudentSide(tmp_path / "home", "alice", tmp_path / "courses.yaml")


def test_widget_shows_the_model_and_the_button_syncs(side):
    model = CoursePanelModel("c1", LocalBackend(side))
    model.refresh()
    view = CoursePanel(model)
    w = view.widget()
    assert view.parts.version.value == "not synced yet" and view.parts.update.value.startswith("yes")
    assert "add 1" in view.parts.pending.value
    view.parts.sync.click()  # headless: the model's coroutine runs to completion
    assert (side.root / "courses" / "c1" / "intro.ipynb").read_text() == "v1"
    assert view.parts.update.value == "no" and view.parts.version.value == model.current_version
    assert "Synced to version" in view.parts.message.value
    assert "scip-course-panel" in w._dom_classes


def test_an_update_and_an_edit_show_then_sync_keeps_the_edit(side):
    model = CoursePanelModel("c1", LocalBackend(side))
    model.sync()
    (side.root / "courses" / "c1" / "intro.ipynb").write_text("my notes")
    (side.registry_file.parent / "material" / "intro.ipynb").write_text("v2")
    view = CoursePanel(model)
    view.widget()
    model.refresh()
    assert view.parts.edited.value == "intro.ipynb" and "rename 1" in view.parts.pending.value
    view.parts.sync.click()
    assert (side.root / "courses" / "c1" / "intro.ipynb").read_text() == "my notes"
    assert "your edited files were kept" in view.parts.message.value


def test_a_failing_backend_shows_the_error_and_keeps_the_last_status(side):
    model = CoursePanelModel("c1", LocalBackend(side))
    model.refresh()
    good = dict(model.status)

    class Broken:
        def status(self, course):
            raise CourseBackendError("HTTP 500: course material: disk full")

        sync = status

    model.backend = Broken()
    view = CoursePanel(model)
    view.widget()
    view.parts.sync.click()
    assert model.status == good
    assert "disk full" in view.parts.message.value and "scip-error" in view.parts.message.value
    assert not view.parts.sync.disabled


def test_panel_html_fallback_is_escaped(side):
    model = CoursePanelModel("c1", LocalBackend(side))
    model.refresh()
    model.error = SCRIPT
    html = CoursePanel(model)._repr_html_()
    assert SCRIPT not in html and "&lt;script&gt;" in html
    view = CoursePanel(model)
    view.widget()
    assert SCRIPT not in view.parts.title.value and SCRIPT not in view.parts.message.value


def test_unknown_course_is_an_error_naming_the_field(side):
    model = CoursePanelModel("nope", LocalBackend(side))
    model.refresh()
    assert model.error == "course: no course 'nope' in the registry"


def _course(title=f"Course {SCRIPT}"):
    return Course(id="c1", title=title, instructors=["teach"], students={"users": ["alice"]},
                  material={"path": "."}, profiles=["cpu-small"], start=dt.date(2026, 1, 1), end=dt.date(2099, 1, 1))


def test_instructor_view_escapes_everything_it_shows():
    status = StudentStatus(f"eve{SCRIPT}", "c1", delivered_version="v1", current_version="v2",
                           notebooks=[f"{SCRIPT}.ipynb"], error=SCRIPT)
    rows = make_rows([status], {f"eve{SCRIPT}": {"last_activity": SCRIPT, "servers": {}}})
    html = render_course(_course(), "active", "v2", status.notebooks, rows, [(SCRIPT, f"http://x/?{SCRIPT}")], "/p/")
    assert SCRIPT not in html and html.count("&lt;script&gt;") >= 5


def test_csv_export_has_one_row_per_student_and_defuses_formulas():
    rows = make_rows(
        [StudentStatus("alice", "c1", delivered_version="v1", current_version="v2", notebooks=["a.ipynb"],
                       opened=["a.ipynb"], changed=["a.ipynb"], reported_at="2026-11-25T06:01:00+00:00"),
         StudentStatus("=cmd|calc", "c1", current_version="v2", notebooks=["a.ipynb"], executed=["a.ipynb"])],
        {"alice": {"last_activity": "2026-11-25T06:00:00Z", "servers": {"": {"ready": True}}}},
    )
    data = list(csv.reader(io.StringIO(render_csv("v2", ["a.ipynb"], rows))))
    assert data[0] == ["student", "server", "last_activity", "material_version", "current_version", "update_available",
                       "edited_files", "a.ipynb", "progress_reported_at", "note"]
    assert data[1] == ["alice", "running", "2026-11-25T06:00:00Z", "v1", "v2", "yes", "1", "opened",
                       "2026-11-25T06:01:00+00:00", ""]
    assert data[2][0] == "'=cmd|calc" and data[2][1] == "never logged in" and data[2][7] == "executed"


@pytest.mark.parametrize(
    "desired, current, users, expected",
    [
        ({"g": ["a"]}, {}, ["a"], [("g", "create", ()), ("g", "add", ("a",))]),
        ({"g": ["a", "ghost"]}, {"g": ["a"]}, ["a"], []),  # unknown users wait until they exist
        ({"g": []}, {"g": ["a"], "other": ["z"]}, ["a", "z"], [("g", "remove", ("a",))]),  # other groups untouched
    ],
)
def test_group_changes(desired, current, users, expected):
    assert [(c.group, c.action, c.users) for c in group_changes(desired, current, users)] == expected


def test_view_doctests():
    import doctest

    from scip_jupyter.courses import hub, panel, view

    for mod in (view, panel, hub):
        assert doctest.testmod(mod).failed == 0
