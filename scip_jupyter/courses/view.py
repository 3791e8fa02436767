"""The instructor view's pure parts: rows, HTML (jinja2, autoescaped), CSV, group changes.

No I/O here: service.py gathers the hub's user models and each student's
status, and calls these.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..i18n import _
from ..templating import render
from .progress import StudentStatus, notebook_state
from .registry import Course



@dataclass
class Row:
    username: str
    server: str
    last_activity: str
    version: str
    update: str
    edits: int
    notebooks: list[str]
    note: str = ""
    #: when the student's server last reported (UTC); "" = never
    reported_at: str = ""


def make_rows(statuses: Iterable[StudentStatus], users: Mapping[str, dict]) -> list[Row]:
    """One row per student from their last progress report and their hub user model."""
    rows = []
    for st in statuses:
        model = users.get(st.username) or {}
        servers = model.get("servers") or {}
        default = servers.get("")
        server = "running" if default and default.get("ready") else "starting" if default else "stopped"
        if not model:
            server = "never logged in"
        rows.append(
            Row(
                username=st.username,
                server=server,
                last_activity=str(model.get("last_activity") or ""),
                version=st.delivered_version or "never synced",
                update="yes" if st.update_available and st.delivered_version else "no",
                edits=len(st.changed),
                notebooks=[notebook_state(st, nb) for nb in st.notebooks],
                note=st.error,
                reported_at=st.reported_at,
            )
        )
    return rows


def words() -> dict[str, str]:
    """Translated words for the data tokens the pages show (rows keep the English tokens)."""
    return {
        "running": _("running"), "starting": _("starting"), "stopped": _("stopped"),
        "never logged in": _("never logged in"), "never synced": _("never synced"),
        "yes": _("yes"), "no": _("no"), "executed": _("executed"), "opened": _("opened"),
        "not opened": _("not opened"), "active": _("active"), "upcoming": _("upcoming"), "ended": _("ended"),
        "course": _("course"), "never reported": _("never reported"),
    }


@dataclass(frozen=True)
class Bar:
    """One bar of a progress chart: how many of `total` notebooks (or students) are executed / opened."""

    label: str
    executed: int
    opened: int
    total: int

    @property
    def none(self) -> int:
        return self.total - self.executed - self.opened

    @property
    def executed_pct(self) -> int:
        return round(100 * self.executed / self.total) if self.total else 0

    @property
    def opened_pct(self) -> int:
        return round(100 * self.opened / self.total) if self.total else 0


@dataclass(frozen=True)
class ProgressChart:
    notebooks: list[Bar]
    students: list[Bar]


def progress_chart(notebooks: list[str], rows: list[Row]) -> ProgressChart:
    """Bars per notebook (over students) and per student (over notebooks).

    >>> rows = [Row("ana", "", "", "", "no", 0, ["executed", "opened"]), Row("bo", "", "", "", "no", 0, ["opened", "not opened"])]
    >>> c = progress_chart(["a.ipynb", "b.ipynb"], rows)
    >>> [(b.label, b.executed, b.opened, b.total) for b in c.notebooks]
    [('a.ipynb', 1, 1, 2), ('b.ipynb', 0, 1, 2)]
    >>> [(b.label, b.executed, b.opened, b.total) for b in c.students]
    [('ana', 1, 1, 2), ('bo', 0, 1, 2)]
    """
    per_notebook = []
    for i, nb in enumerate(notebooks):
        states = [r.notebooks[i] for r in rows if i < len(r.notebooks)]
        per_notebook.append(Bar(nb, states.count("executed"), states.count("opened"), len(rows)))
    per_student = [
        Bar(r.username, r.notebooks.count("executed"), r.notebooks.count("opened"), len(notebooks)) for r in rows
    ]
    return ProgressChart(per_notebook, per_student)


def render_index(courses: list[dict], user: str, prefix: str, **page) -> str:
    """`page`: hub_prefix and language_links for the hub-styled layout (optional)."""
    return render("course_index.html", courses=courses, user=user, prefix=prefix, words=words(), **page)


def render_course(
    course: Course, state: str, version: str, notebooks: list[str], rows: list[Row], links: list[tuple[str, str]],
    prefix: str, **page,
) -> str:
    return render(
        "course_view.html",
        course=course, state=state, version=version, notebooks=notebooks, rows=rows, links=links, prefix=prefix,
        words=words(), chart=progress_chart(notebooks, rows), **page,
        gpu_hours=__import__("scip_jupyter.allocations.usage_model", fromlist=["_"]).course_gpu_hours(course),
    )


def _cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula.

    >>> _cell("=HYPERLINK(1)"), _cell("alice")
    ("'=HYPERLINK(1)", 'alice')
    """
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(version: str, notebooks: list[str], rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["student", "server", "last_activity", "material_version", "current_version", "update_available",
                     "edited_files", *notebooks, "progress_reported_at", "note"])
    for r in rows:
        writer.writerow([_cell(v) for v in (r.username, r.server, r.last_activity, r.version, version, r.update,
                                             r.edits, *r.notebooks, r.reported_at, r.note)])
    return out.getvalue()


@dataclass(frozen=True)
class GroupChange:
    group: str
    action: str  # create | add | remove
    users: tuple[str, ...] = ()


def group_changes(
    desired: Mapping[str, Iterable[str]], current: Mapping[str, Iterable[str]], existing_users: Iterable[str]
) -> list[GroupChange]:
    """What to do so course groups hold exactly the registry's members.

    Users the hub does not know yet are left out (they are added when they
    first use a launch link or at the next pass after they log in).

    >>> group_changes({"course-x-students": ["a", "b"]}, {"course-x-students": ["b", "z"]}, ["a", "b", "z"])
    [GroupChange(group='course-x-students', action='add', users=('a',)), GroupChange(group='course-x-students', action='remove', users=('z',))]
    """
    known = set(existing_users)
    changes = []
    for group in sorted(desired):
        want = set(desired[group]) & known
        if group not in current:
            changes.append(GroupChange(group, "create"))
            have: set[str] = set()
        else:
            have = set(current[group])
        if want - have:
            changes.append(GroupChange(group, "add", tuple(sorted(want - have))))
        if have - want:
            changes.append(GroupChange(group, "remove", tuple(sorted(have - want))))
    return changes
