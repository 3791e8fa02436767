"""Course progress reports: the body a student's server sends, the store, the status the view shows, the sender."""

from __future__ import annotations

import asyncio
import json

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from scip_jupyter.courses.reports import MAX_PATHS, Report, ReportError, ReportStore, parse_report, status_from_report
from scip_jupyter.courses.student import StudentSide
from scip_jupyter.courses.sync import sync_folder
from scip_jupyter.courses.material import folder_snapshot
from scip_jupyter.server.course_reports import CourseReporter

SCRIPT = "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "body, field, words",
    [
        (b"not json", "body", "is not JSON"),
        (b"[1, 2]", "body", "must be a JSON object"),
        (b'{"course": "c", "username": "bob"}', "username", "unknown field; allowed: course, delivered_version"),
        (b'{"opened": []}', "course", "required, a course id"),
        (json.dumps({"course": SCRIPT}).encode(), "course", "lowercase letters"),
        (b'{"course": "c", "delivered_version": 3}', "delivered_version", "at most 100 characters"),
        (b'{"course": "c", "synced_at": "' + b"x" * 101 + b'"}', "synced_at", "at most 100 characters"),
        (b'{"course": "c", "opened": "a.ipynb"}', "opened", "a list of at most"),
        (b'{"course": "c", "executed": ["../../etc/passwd"]}', "executed", "not a relative path inside the course folder"),
        (b'{"course": "c", "changed": [".hidden/x"]}', "changed", "without '..' or hidden parts"),
        (b'{"course": "c", "opened": [7]}', "opened", "not a relative path"),
        (json.dumps({"course": "c", "opened": [f"{i}.ipynb" for i in range(MAX_PATHS + 1)]}).encode(), "opened",
         "a list of at most"),
    ],
    ids=["not-json", "not-object", "unknown-field", "no-course", "bad-course", "version-type", "version-long",
         "list-type", "path-escapes", "path-hidden", "path-type", "too-many"],
)
def test_a_bad_report_is_refused_naming_the_field(body, field, words):
    with pytest.raises(ReportError) as err:
        parse_report(body)
    assert err.value.field == field and err.value.status == 400 and words in str(err.value)


def test_a_report_body_larger_than_allowed_is_refused_unread():
    with pytest.raises(ReportError) as err:
        parse_report(b"{" + b" " * (4 * 1024 * 1024) + b"}")
    assert err.value.status == 413 and err.value.field == "body"


def test_a_good_report_is_normalised():
    report = parse_report(b'{"course": "intro", "opened": ["b.ipynb", "a.ipynb", "a.ipynb"], "delivered_version": "v1"}')
    assert report == Report(course="intro", delivered_version="v1", opened=("a.ipynb", "b.ipynb"))


def test_status_trusts_the_material_only_from_the_service():
    # a server claims a notebook the material does not have and a version it cannot know
    report = {"delivered_version": "v2", "opened": ["a.ipynb", f"{SCRIPT}.ipynb"], "executed": ["b.ipynb"],
              "changed": ["a.ipynb"]}
    st = status_from_report("ana", "c", report, "2026-12-01T10:00:00+00:00", {"a.ipynb": "h", "b.ipynb": "h", "x.py": "h"}, "v2")
    assert st.notebooks == ["a.ipynb", "b.ipynb"]
    assert st.opened == ["a.ipynb", "b.ipynb"] and st.executed == ["b.ipynb"]  # executed counts as opened
    assert not st.update_available and st.changed == ["a.ipynb"] and st.reported_at == "2026-12-01T10:00:00+00:00"
    never = status_from_report("bo", "c", None, "", {"a.ipynb": "h"}, "v2")
    assert never.reported_at == "" and never.never_synced and never.opened == []


def test_the_store_keeps_the_last_report_per_student_and_course(tmp_path):
    store = ReportStore(tmp_path / "reports.sqlite")
    store.put("ana", Report("c1", opened=("a.ipynb",)), "2026-12-01T10:00:00+00:00")
    store.put("ana", Report("c1", opened=("a.ipynb", "b.ipynb")), "2026-12-01T11:00:00+00:00")
    store.put("ana", Report("c2"), "2026-12-01T12:00:00+00:00")
    store.put("bo", Report("c1"), "2026-12-01T09:00:00+00:00")
    again = ReportStore(tmp_path / "reports.sqlite")  # a restarted service sees the same
    got = again.for_course("c1")
    assert sorted(got) == ["ana", "bo"]
    assert got["ana"][0]["opened"] == ["a.ipynb", "b.ipynb"] and got["ana"][1] == "2026-12-01T11:00:00+00:00"
    assert list(again.for_course("c2")) == ["ana"] and again.for_course("c3") == {}


def _notebook(executed: bool) -> bytes:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "source": ["1"], "execution_count": 1 if executed else None}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def test_a_server_reports_its_own_folder(tmp_path):
    material = tmp_path / "material"
    material.mkdir()
    for name, data in {"01.ipynb": _notebook(False), "02.ipynb": _notebook(False), "data.csv": b"a,b\n"}.items():
        (material / name).write_bytes(data)
    snap = folder_snapshot(material)
    side = StudentSide(tmp_path, "ana", tmp_path / "courses.yaml")
    folder = tmp_path / "courses" / "intro"
    sync_folder("intro", snap, folder)
    assert side.note_opened("courses/intro/01.ipynb")
    (folder / "02.ipynb").write_bytes(_notebook(True))
    (folder / "data.csv").write_text("mine\n")
    report = side.report("intro")
    assert parse_report(json.dumps(report).encode()) == Report(
        course="intro", delivered_version=snap.version, synced_at=report["synced_at"], changed=("02.ipynb", "data.csv"),
        opened=("01.ipynb", "02.ipynb"), executed=("02.ipynb",))
    assert side.present() == ["intro"]


class _Service(web.RequestHandler):
    def initialize(self, log, answers):
        self.log_, self.answers = log, answers

    def post(self):
        self.log_.append((self.request.headers.get("Authorization"), json.loads(self.request.body)))
        self.set_status(self.answers.pop(0) if self.answers else 200)
        self.finish("{}")


@pytest.fixture
async def service():
    log, answers = [], []
    [sock] = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(web.Application([(r"/services/scip-courses/api/report", _Service, {"log": log, "answers": answers})]))
    server.add_sockets([sock])
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/services/scip-courses/", log, answers
    server.stop()


async def _until(condition, tries: int = 200):
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def test_a_burst_of_events_makes_one_report_per_course(service):
    url, log, _answers = service
    reporter = CourseReporter(url, "server-token", lambda course: {"course": course}, delay=0.05)
    for _ in range(5):
        reporter.mark("intro")
    reporter.mark("other")
    await _until(lambda: len(log) == 2 and not reporter.pending)
    await asyncio.sleep(0.2)  # nothing more goes out
    assert sorted(body["course"] for _, body in log) == ["intro", "other"]
    assert {auth for auth, _ in log} == {"token server-token"}  # the server's own token, nobody else's


@pytest.mark.parametrize("status, attempts, sent", [(503, 2, 1), (403, 1, 0)], ids=["service-away", "refused"])
async def test_a_report_is_tried_again_only_while_the_service_is_away(service, status, attempts, sent):
    url, log, answers = service
    answers.append(status)
    reporter = CourseReporter(url, "t", lambda course: {"course": course}, delay=0.02)
    reporter.mark("intro")
    await _until(lambda: len(log) >= attempts and not reporter.pending)
    await asyncio.sleep(0.2)
    assert len(log) == attempts and reporter.sent.get("intro", 0) == sent


async def test_reports_pending_at_shutdown_are_sent_then(service):
    url, log, _answers = service
    reporter = CourseReporter(url, "t", lambda course: {"course": course}, delay=3600)
    reporter.mark("intro")
    await reporter.close()
    assert [body["course"] for _, body in log] == ["intro"] and not reporter.pending


def test_no_reporter_outside_the_hub():
    assert CourseReporter.from_environment(lambda c: {}, {"JUPYTERHUB_API_TOKEN": "t"}) is None
    assert CourseReporter.from_environment(lambda c: {}, {"SCIP_COURSES_SERVICE_URL": "http://x/"}) is None
