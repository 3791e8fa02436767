"""`scip-jupyter course ...`: the instructor's and operator's course verbs.

    scip-jupyter course list                       courses, dates, state, students
    scip-jupyter course links  ID [--hub-url URL]  the course launch link and one per notebook
    scip-jupyter course status ID [--student S]    per student: version, update available, edits, notebooks
                              [--reports FILE]     ... from the students' own servers' last reports
    scip-jupyter course sync   ID [--student S]    deliver the current material (never loses student edits)
    scip-jupyter course reset  ID (--student S | --all) --yes
                                                   back up the student's folder, deliver the material afresh

Class-wide operations show a progress bar (rich). `--courses` defaults to
$SCIP_COURSES_FILE, else hub_config/courses.yaml; `--homes` (the folder of the
students' notebook roots) to $SCIP_HOMES, else the embedded platform's
`.state/hub/home`. Students listed through groups are resolved with
`--group-member GROUP=user1,user2` (or are listed explicitly with --student).

`status` reads the students' folders when they are on this machine, else the
last reports their own servers sent the `scip-courses` service (courses/reports.py;
the only source on Kubernetes, where no home is mounted in the hub pod):
`--reports FILE` names the service's store; without --reports and --homes, and
when the homes folder is not here, it is $SCIP_COURSE_REPORTS, else
`scip-course-reports.sqlite` in the current folder (the hub's folder, beside
jupyterhub.sqlite) when that file exists. The store is opened read-only.
Exit status: 0 when everything succeeded, 1 when a student's operation failed,
2 for a usage or configuration error.

Everything a person reads (help, table headers, notes, errors) follows the
language of $SCIP_LANG/$LANGUAGE/$LC_ALL/$LANG (English or French, catalog
`locale/fr/LC_MESSAGES/course_cli.po`); `--json` keys and values stay as they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import quote, urlencode

from ..config import ConfigError
from ..i18n import N_, _
from .ops import HOMES_ENV, Homes, current_snapshot, for_each, reset_student, status_student, sync_student, today
from .progress import notebook_state
from .registry import COURSES_ENV, Course, Registry, load_courses
from .reports import DEFAULT_STORE_NAME, REPORTS_ENV, ReportStore, status_from_report

DEFAULT_HUB_URL = "http://127.0.0.1:8000"

#: Words shown for machine values (course state, notebook state, sync actions); JSON keeps the values.
WORDS = {
    "upcoming": N_("upcoming"), "active": N_("active"), "ended": N_("ended"),
    "executed": N_("executed"), "opened": N_("opened"), "not opened": N_("not opened"),
    "add": N_("add"), "update": N_("update"), "uptodate": N_("uptodate"), "keep": N_("keep"),
    "rename": N_("rename"), "remove": N_("remove"), "forget": N_("forget"), "skipped": N_("skipped"),
}


def word(value: str) -> str:
    """A machine value as the person reads it (unknown values pass through unchanged)."""
    return _(WORDS[value]) if value in WORDS else value


def launch_url(hub_url: str, course_id: str, notebook: str = "") -> str:
    """The launch link of a course (and of one notebook in it).

    >>> launch_url("http://127.0.0.1:8000/", "intro-gpu", "01 start.ipynb")
    'http://127.0.0.1:8000/hub/scip/course/intro-gpu/launch?notebook=01+start.ipynb'
    """
    url = f"{hub_url.rstrip('/')}/hub/scip/course/{quote(course_id)}/launch"
    return url + ("?" + urlencode({"notebook": notebook}) if notebook else "")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)

    def common(p, course=True):
        p.add_argument("--courses", help=_("courses.yaml (default ${env}, else hub_config/courses.yaml)").format(
            env=COURSES_ENV))
        if course:
            p.add_argument("course", help=_("course id"))
        return p

    help_ = _("courses, dates, state and students")
    common(sub.add_parser("list", help=help_, description=help_), course=False)
    help_ = _("launch links: the course and each notebook")
    links = common(sub.add_parser("links", help=help_, description=help_))
    links.add_argument("--hub-url", default=DEFAULT_HUB_URL,
                       help=_("public hub URL (default {url})").format(url=DEFAULT_HUB_URL))
    for name, help_ in (
        ("status", N_("per student: material version, update available, edits, notebooks opened/executed")),
        ("sync", N_("deliver the current material to students (their edits are kept)")),
        ("reset", N_("back up a student's course folder and deliver the material afresh")),
    ):
        p = common(sub.add_parser(name, help=_(help_), description=_(help_)))
        p.add_argument("--student", action="append", default=[], metavar="USER",
                       help=_("only this student (repeatable)"))
        p.add_argument("--homes", help=_("folder of the students' notebook roots, or a path with {username}"))
        p.add_argument(
            "--group-member", action="append", default=[], metavar="GROUP=u1,u2",
            help=_("members of a hub group the course enrols (repeatable)"),
        )
        p.add_argument("--json", action="store_true", help=_("print the results as JSON"))
        if name == "status":
            p.add_argument("--reports", metavar="FILE", help=_(
                "the scip-courses service's report store (SQLite): read the students' own servers' last reports "
                "instead of their folders (default when the homes folder is not here: ${env}, "
                "else ./{store} if it exists)").format(env=REPORTS_ENV, store=DEFAULT_STORE_NAME))
        if name == "sync":
            p.add_argument("--dry-run", action="store_true", help=_("show the plan, change nothing"))
        if name == "reset":
            p.add_argument("--all", action="store_true", help=_("reset every student of the course"))
            p.add_argument("--yes", action="store_true", help=_("confirm (a backup of each folder is kept)"))


def _registry(args) -> Registry:
    from ..embedded import project_root

    path = args.courses or __import__("os").environ.get(COURSES_ENV) or project_root() / "hub_config" / "courses.yaml"
    return load_courses(path)


def _group_members(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values:
        if "=" not in value:
            raise ValueError(_("--group-member: {value} is not GROUP=user1,user2").format(value=repr(value)))
        group, users = value.split("=", 1)
        out.setdefault(group.strip(), []).extend(u.strip() for u in users.split(",") if u.strip())
    return out


def _students(args, course: Course) -> list[str]:
    members = _group_members(args.group_member)
    enrolled = course.student_names(members)
    if args.student:
        unknown = [s for s in args.student if s not in enrolled]
        if unknown:
            raise ValueError(_("--student: {unknown} not enrolled in {course}; enrolled: {enrolled}").format(
                unknown=", ".join(unknown), course=course.id, enrolled=", ".join(enrolled) or _("(none)")))
        return list(args.student)
    missing = [g for g in course.students.groups if g not in members]
    if missing:
        print(_("note: students in groups {groups} are not listed; pass --group-member GROUP=users").format(
            groups=", ".join(missing)), file=sys.stderr)
    return enrolled


def _progress(console, label: str, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[who]}"),
        TimeElapsedColumn(), console=console, transient=False, disable=total < 2,
    )


def _class_op(args, course, names, op, label):
    from rich.console import Console

    console = Console(stderr=True)
    with _progress(console, label, len(names)) as bar:
        task = bar.add_task(f"{label} {course.id}", total=len(names), who="")
        return for_each(names, op, lambda who: bar.update(task, advance=1, who=who))


def _print_outcomes(outcomes, as_json: bool) -> int:
    from rich.console import Console
    from rich.table import Table

    if as_json:
        print(json.dumps([{"student": o.username, "ok": o.ok, "result": o.detail, "error": o.error} for o in outcomes],
                         indent=1))
    else:
        table = Table(_("student"), _("result"), _("details"))
        for o in outcomes:
            if not o.ok:
                table.add_row(o.username, "[red]" + _("failed"), o.error)
                continue
            summary = ", ".join(f"{word(k)} {v}" for k, v in sorted(o.detail["summary"].items())) or _("nothing to do")
            extra = [*o.detail.get("changes", []), *o.detail.get("skipped", [])]
            if o.detail.get("backup"):
                extra.insert(0, _("backup: {path}").format(path=o.detail["backup"]))
            table.add_row(o.username, _("version {version}: {summary}").format(
                version=o.detail["version"], summary=summary), "\n".join(extra[:12]))
        Console().print(table)
    return 0 if all(o.ok for o in outcomes) else 1


def _list(registry: Registry) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(_("id"), _("title"), _("state"), _("dates"), _("profiles"), _("instructors"), _("students"))
    for c in registry.courses:
        students = ", ".join([*c.students.users, *(_("group {group}").format(group=g) for g in c.students.groups)])
        table.add_row(c.id, c.title, word(c.state(today())), f"{c.start} – {c.end}", ", ".join(c.profiles),
                      ", ".join(c.instructors), students)
    Console().print(table)
    return 0


def _links(registry: Registry, course: Course, hub_url: str) -> int:
    snap = current_snapshot(registry, course)
    print(f"{course.id}: {launch_url(hub_url, course.id)}")
    for nb in sorted(p for p in snap.files if p.endswith(".ipynb")):
        print(f"  {nb}: {launch_url(hub_url, course.id, nb)}")
    return 0


def reports_source(explicit: str | None, homes: str | None, environ=None, cwd: Path | None = None) -> Path | None:
    """The report store `status` reads, or None to read the students' folders.

    --reports wins; --homes (or $SCIP_HOMES) means folders; else the store when
    the homes folder is not on this machine and the store file exists.
    """
    import os

    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if homes or environ.get(HOMES_ENV):
        return None
    from ..embedded import HubSettings

    if HubSettings.from_env(environ).homes.is_dir():  # the embedded platform's homes are here
        return None
    store = Path(environ.get(REPORTS_ENV) or (cwd or Path.cwd()) / DEFAULT_STORE_NAME)
    return store if store.is_file() else None


def _reported_statuses(store_path: Path, course, snap, names):
    if not store_path.is_file():
        raise FileNotFoundError(_("--reports: no report store at {path}").format(path=store_path))
    reports = ReportStore(store_path).read_course(course.id)
    return [status_from_report(n, course.id, *reports.get(n, (None, "")), snap.files, snap.version) for n in names]


def _status(args, registry, course, names) -> int:
    from rich.console import Console
    from rich.table import Table

    snap = current_snapshot(registry, course)
    store = reports_source(getattr(args, "reports", None), args.homes)
    if store is not None:
        rows = _reported_statuses(store, course, snap, names)
    else:
        homes = Homes.default(args.homes)
        rows = _class_op(args, course, names, lambda n: status_student(course, snap, homes, n), _("reading"))
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1))
        return 0
    title = _("{course} — material version {version}").format(course=course.id, version=snap.version)
    if store:
        title += " — " + _("as reported ({store})").format(store=store)
    table = Table(_("student"), _("version"), _("update"), _("your edits"), *([_("reported")] if store else []),
                  *[Path(nb).name for nb in rows[0].notebooks] if rows else [], title=title)
    for r in rows:
        if r.error:
            table.add_row(r.username, "—", "—", r.error)
            continue
        if store and not r.reported_at:
            table.add_row(r.username, _("no report yet"), "—", "—", "—", *["—" for _nb in r.notebooks])
            continue
        table.add_row(r.username, r.delivered_version or _("never synced"), _("yes") if r.update_available else _("no"),
                      str(len(r.changed)), *([r.reported_at] if store else []),
                      *[word(notebook_state(r, nb)) for nb in r.notebooks])
    Console().print(table)
    return 0


def run(args) -> int:
    try:
        registry = _registry(args)
        if args.action == "list":
            return _list(registry)
        course = registry.get(args.course)
        if course is None:
            raise ValueError(_("course: unknown course {course}; known: {known}").format(
                course=repr(args.course), known=", ".join(registry.ids) or _("(none)")))
        if args.action == "links":
            return _links(registry, course, args.hub_url)
        names = _students(args, course)
        if args.action == "status":
            return _status(args, registry, course, names)
        snap = current_snapshot(registry, course)
        homes = Homes.default(args.homes)
        if args.action == "sync":
            outcomes = _class_op(args, course, names, lambda n: sync_student(course, snap, homes, n, args.dry_run),
                                 _("syncing"))
            return _print_outcomes(outcomes, args.json)
        if args.action == "reset":
            if not args.student and not args.all:
                raise ValueError(_("reset: name --student USER (repeatable) or --all for the whole class"))
            if not args.yes:
                raise ValueError(_("reset: add --yes to confirm (each student's folder is moved to a backup beside it)"))
            outcomes = _class_op(args, course, names, lambda n: reset_student(course, snap, homes, n), _("resetting"))
            return _print_outcomes(outcomes, args.json)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"scip-jupyter course: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    return 2
