"""The home page's course cards and `scip-jupyter course status --reports`, from the students' own reports.

Both read the store the `scip-courses` service writes (courses/reports.py),
read-only, never the students' folders: the same source on the embedded hub
and on Kubernetes (where the hub pod mounts no home).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from scip_jupyter.cli import main
from scip_jupyter.courses.cli import reports_source
from scip_jupyter.courses.ops import current_snapshot
from scip_jupyter.courses.registry import load_courses
from scip_jupyter.courses.reports import ReportStore, parse_report
from scip_jupyter.home import model
from scip_jupyter.i18n import use_locale
from tests.unit.test_i18n_catalog import hub_environment, hub_namespace, home_context

ROOT = Path(__file__).resolve().parents[2]
STAMP = "2026-12-01T10:00:05+00:00"


def _course(state="active"):
    return SimpleNamespace(id="intro", title="Intro", state=lambda _day: state)


@pytest.mark.parametrize(
    "report, current, version, update, reported_at, words",
    [
        ({"delivered_version": "v1"}, "v2", "v1", True, STAMP, "reported 2026-12-01 10:00 UTC"),
        ({"delivered_version": "v2"}, "v2", "v2", False, STAMP, "reported 2026-12-01 10:00 UTC"),
        ({"delivered_version": ""}, "v2", "", False, STAMP, "reported 2026-12-01 10:00 UTC"),  # reported, never synced
        (None, "v2", "", False, "", "Your server has not reported this course yet"),
    ],
    ids=["update-available", "up-to-date", "reported-not-synced", "no-report-yet"],
)
def test_course_card_shows_the_version_the_persons_server_reported(report, current, version, update, reported_at, words):
    card = model.course_card(_course(), "/hub/scip/course/intro/launch", current, report, STAMP if report else "")
    assert (card.your_version, card.update_available, card.reported_at) == (version, update, reported_at)
    assert card.reported_text.startswith(words)


def test_no_report_is_said_in_french():
    with use_locale("fr"):
        assert model.reported_words("").startswith("Votre serveur n'a pas encore transmis")
        assert model.reported_words(STAMP) == "transmis le 2026-12-01 10:00 UTC"


def test_a_store_that_cannot_be_read_leaves_the_reason_and_claims_nothing():
    card = model.course_card(_course(), "/l", "v2", None, "", "the progress reports cannot be read now")
    assert card.note == "the progress reports cannot be read now" and card.reported_text == "" and card.your_version == ""


def _render(cards, language="en") -> str:
    env = hub_environment()
    with use_locale(language):
        return env.get_template("scip_home.html").render(**hub_namespace(**{**home_context(), "courses": cards}))


@pytest.mark.parametrize("language, reported, missing", [
    ("en", "(<time datetime=\"2026-12-01T10:00:05+00:00\">reported 2026-12-01 10:00 UTC</time>)",
     "Your server has not reported this course yet"),
    ("fr", "(<time datetime=\"2026-12-01T10:00:05+00:00\">transmis le 2026-12-01 10:00 UTC</time>)",
     "Votre serveur n&#39;a pas encore transmis"),
])
def test_home_page_card_says_when_it_was_reported_or_that_no_report_came(language, reported, missing):
    with use_locale(language):
        cards = [model.course_card(_course(), "/l", "v2", {"delivered_version": "v1<script>"}, STAMP),
                 model.course_card(SimpleNamespace(id="other", title="Other", state=lambda _d: "active"), "/l2", "v2", None)]
        html = _render(cards, language)
    assert reported in html and missing in html
    assert "v1&lt;script&gt;" in html and "v1<script>" not in html
    # the card without a report shows no version and no "up to date"
    other = html[html.index('data-course="other"'):]
    other = other[:other.index("</li>")]
    assert "scip-course-version" not in other


def _report(course="intro", version="v1", **extra) -> bytes:
    return json.dumps({"course": course, "delivered_version": version, **extra}).encode()


def test_reading_a_persons_reports_gives_only_theirs_and_creates_nothing(tmp_path):
    path = tmp_path / "reports.sqlite"
    reader = ReportStore(path)
    assert reader.for_student("ana") == {} and not path.exists()  # read-only: no file made
    sqlite3.connect(path).close()  # the file exists, the service has not made its table yet
    assert reader.for_student("ana") == {}
    writer = ReportStore(path)
    writer.put("ana", parse_report(_report()), STAMP)
    writer.put("ana", parse_report(_report("other", "v9")), STAMP)
    writer.put("bo", parse_report(_report("intro", "v7")), STAMP)
    mine = reader.for_student("ana")
    assert sorted(mine) == ["intro", "other"] and mine["intro"][0]["delivered_version"] == "v1"
    assert mine["intro"][1] == STAMP
    assert sorted(reader.read_course("intro")) == ["ana", "bo"]
    with sqlite3.connect(path) as conn:  # a damaged row is no report, never an error
        conn.execute("UPDATE reports SET report = 'not json' WHERE username = 'bo'")
    assert sorted(reader.read_course("intro")) == ["ana"]


def test_a_read_only_reader_never_writes(tmp_path):
    path = tmp_path / "reports.sqlite"
    ReportStore(path).put("ana", parse_report(_report()), STAMP)
    path.chmod(0o444)
    before = path.read_bytes()
    assert ReportStore(path).for_student("ana")["intro"][1] == STAMP
    assert path.read_bytes() == before


# --- scip-jupyter course status --reports ----------------------------------------------------------

COURSES = """\
courses:
  - id: c1
    title: "Course one"
    instructors: [teach]
    students:
      users: [alice, bob]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""


@pytest.fixture
def site(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich tables wrap at the terminal's width
    base = ROOT / ".state" / f"test-home-courses-{uuid.uuid4().hex[:8]}"
    (base / "material").mkdir(parents=True)
    (base / "material" / "intro.ipynb").write_text("intro v1")
    (base / "material" / "lab.ipynb").write_text("lab v1")
    (base / "courses.yaml").write_text(COURSES)
    registry = load_courses(base / "courses.yaml")
    version = current_snapshot(registry, registry.require("c1")).version
    yield SimpleNamespace(base=base, courses=base / "courses.yaml", store=base / "reports.sqlite", version=version)
    shutil.rmtree(base)


def test_course_status_reads_the_students_reports(site, capsys):
    ReportStore(site.store).put("alice", parse_report(_report("c1", "old", executed=["intro.ipynb"],
                                                              changed=["intro.ipynb"])), STAMP)
    ReportStore(site.store).put("bob", parse_report(_report("c1", site.version, opened=["lab.ipynb"])), STAMP)
    args = ["course", "status", "c1", "--courses", str(site.courses), "--reports", str(site.store)]
    assert main([*args, "--json"]) == 0
    rows = {r["username"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["alice"]["update_available"] and rows["alice"]["executed"] == ["intro.ipynb"]
    assert rows["alice"]["reported_at"] == STAMP and rows["alice"]["changed"] == ["intro.ipynb"]
    assert not rows["bob"]["update_available"] and rows["bob"]["opened"] == ["lab.ipynb"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "as reported" in table and STAMP in table and "old" in table


def test_course_status_says_who_has_not_reported(site, capsys):
    ReportStore(site.store).put("alice", parse_report(_report("c1", site.version)), STAMP)
    assert main(["course", "status", "c1", "--courses", str(site.courses), "--reports", str(site.store)]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("│ ")}
    assert "no report yet" in lines["bob"] and "no report yet" not in lines["alice"]


def test_course_status_names_a_missing_store(site, capsys):
    missing = site.base / "nowhere.sqlite"
    assert main(["course", "status", "c1", "--courses", str(site.courses), "--reports", str(missing)]) == 2
    assert f"--reports: no report store at {missing}" in capsys.readouterr().err


def test_reports_are_read_automatically_when_the_homes_are_not_here(tmp_path):
    store = tmp_path / "scip-course-reports.sqlite"
    away = {"SCIP_HUB_STATE_DIR": str(tmp_path / "no-hub-here")}  # no homes folder on this machine
    assert reports_source(None, None, environ=away, cwd=tmp_path) is None  # no store either: the folders
    ReportStore(store).put("ana", parse_report(_report()), STAMP)
    assert reports_source(None, None, environ=away, cwd=tmp_path) == store
    assert reports_source(None, None, environ={**away, "SCIP_COURSE_REPORTS": str(store)}) == store
    (tmp_path / "no-hub-here" / "home").mkdir(parents=True)  # the embedded platform's homes are here
    assert reports_source(None, None, environ=away, cwd=tmp_path) is None
    assert reports_source(None, str(tmp_path), environ=away, cwd=tmp_path) is None  # --homes wins
    assert reports_source(None, None, environ={**away, "SCIP_HOMES": "/x"}, cwd=tmp_path) is None
    assert reports_source(str(store), "/x", environ=away) == store  # --reports wins


# --- where the home page reads (handlers.py) -------------------------------------------------------


def test_the_home_page_reads_the_store_the_courses_service_writes():
    from scip_jupyter.home.handlers import HomeHandler

    service = SimpleNamespace(environment={"SCIP_COURSE_REPORTS": "/srv/jupyterhub/scip-course-reports.sqlite"})
    assert HomeHandler._report_store_path(SimpleNamespace(services={"scip-courses": service})) == service.environment[
        "SCIP_COURSE_REPORTS"]
    assert HomeHandler._report_store_path(SimpleNamespace(services={})) == ""


def test_a_store_that_is_not_a_database_gives_words_not_its_path(tmp_path):
    from scip_jupyter.home.handlers import HomeHandler

    path = tmp_path / "reports.sqlite"
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(RuntimeError) as exc:
        HomeHandler._own_reports(SimpleNamespace(_report_store_path=lambda: str(path)), "ana")
    assert str(exc.value) == "the progress reports cannot be read now" and str(tmp_path) not in str(exc.value)
    assert HomeHandler._own_reports(SimpleNamespace(_report_store_path=lambda: ""), "ana") == {}
