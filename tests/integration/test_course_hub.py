"""Courses in a real JupyterHub (`scip-jupyter up` with hub_config/local.py and hub_config/courses.yaml).

The demo registry has `intro-gpu` (active; student1, instructor1; profile
mig-1g-10gb) and `llm-finetune-2025` (ended; would grant mig-3g-40gb).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from urllib.parse import urlparse

import pytest
import requests

from scip_jupyter.courses.registry import Course, Registry
from scip_jupyter.courses.service import HubAPI, sync_groups
from tests.fixtures.course_progress import execute_notebook, progress_rows, wait_for_row

pytestmark = pytest.mark.hub
LAUNCH = "/hub/scip/course/{}/launch"


def _follow(hub, session: requests.Session, path: str, limit: int = 60) -> requests.Response:
    """Follow redirects like a browser, waiting on the spawn-pending page; returns the last response."""
    url = hub.url + path
    for _ in range(limit):
        # as a browser following a link on the hub's own pages (a link from elsewhere asks first)
        r = session.get(url, allow_redirects=False, timeout=60, headers={"Sec-Fetch-Site": "same-origin"})
        if r.status_code in (301, 302, 303, 307):
            loc = r.headers["Location"]
            url = hub.url + loc if loc.startswith("/") else loc
            if "/lab/tree/" in urlparse(url).path:
                return r
            continue
        if r.status_code == 200 and "/hub/spawn-pending/" in url:
            import time

            time.sleep(1)
            continue
        return r
    pytest.fail(f"too many redirects from {path}:\n{hub.log_tail()}")


def _token(hub, user: str) -> dict:
    r = hub.api("POST", f"/users/{user}/tokens", json={"note": "course tests", "expires_in": 3600})
    r.raise_for_status()
    return {"Authorization": f"token {r.json()['token']}"}


@pytest.fixture(scope="module")
def launched(hub):
    """student1 followed the course launch link of intro-gpu (server running, material synced)."""
    session = hub.login("student1")
    last = _follow(hub, session, LAUNCH.format("intro-gpu") + "?notebook=01-getting-started.ipynb")
    yield session, last
    hub.stop_server("student1")


def test_course_groups_and_instructor_role_are_loaded_at_start(hub):
    students = hub.api("GET", "/groups/course-intro-gpu-students").json()
    instructors = hub.api("GET", "/groups/course-intro-gpu-instructors").json()
    # the students' role lets their servers report progress to the course service, nothing more
    assert students["users"] == ["student1"] and students["roles"] == ["course-intro-gpu-student"]
    assert instructors["users"] == ["instructor1"] and instructors["roles"] == ["course-intro-gpu-instructor"]


def test_launch_link_starts_the_course_profile_and_opens_the_notebook(hub, launched):
    _, last = launched
    assert last.headers["Location"] == "/user/student1/lab/tree/courses/intro-gpu/01-getting-started.ipynb"
    server = hub.user("student1")["servers"][""]
    assert server["ready"] and server["user_options"] == {"profile": "mig-1g-10gb", "course": "intro-gpu"}
    folder = hub.state_dir / "hub" / "home" / "student1" / "courses" / "intro-gpu"
    assert (folder / "01-getting-started.ipynb").is_file() and (folder / ".scip-course.json").is_file()


def test_instructor_reaches_their_students_server_and_nobody_else_does(hub, launched):
    status = "/user/student1/scip/api/course/status?course=intro-gpu"
    r = requests.get(hub.url + status, headers=_token(hub, "instructor1"), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "student1" and not r.json()["update_available"]
    for other in ("researcher1",):
        r = requests.get(hub.url + status, headers=_token(hub, other), allow_redirects=False, timeout=30)
        assert r.status_code == 403, (other, r.status_code)
    # the student sees only themselves in the hub
    r = requests.get(hub.api_url + "/users", headers=_token(hub, "student1"), timeout=30)
    assert r.status_code == 403


def test_a_fellow_student_of_the_course_cannot_reach_another_students_server(hub, launched):
    # student2 takes the same course (in its students group), yet student1's server is student1's alone
    assert hub.api("POST", "/users/student2").status_code in (201, 409)
    assert hub.api("POST", "/groups/course-intro-gpu-students/users", json={"users": ["student2"]}).status_code == 200
    fellow = _token(hub, "student2")
    for method, path, body in (
        ("GET", "/user/student1/scip/api/course/status?course=intro-gpu", None),
        ("POST", "/user/student1/scip/api/course/sync", {"course": "intro-gpu"}),
        ("POST", "/user/student1/scip/api/course/reset", {"course": "intro-gpu"}),
        ("GET", "/user/student1/scip/api/course/launch?course=intro-gpu", None),
    ):
        r = requests.request(method, hub.url + path, json=body, headers=fellow, allow_redirects=False, timeout=30)
        assert r.status_code == 403, (method, path, r.status_code, r.text[:200])
    folder = hub.state_dir / "hub" / "home" / "student1" / "courses"
    before = sorted(p.name for p in folder.iterdir())
    requests.post(hub.url + "/user/student1/scip/api/course/reset", json={"course": "intro-gpu"}, headers=fellow, timeout=30)
    assert sorted(p.name for p in folder.iterdir()) == before


def test_the_extension_refuses_whoever_the_hub_lets_in_but_is_neither_owner_nor_instructor(hub, launched):
    # the hub's admin service may reach every server; the course extension still refuses it to change
    # a student's course folder (with JUPYTERHUB_USER set, as in every hub-started server)
    folder = hub.state_dir / "hub" / "home" / "student1" / "courses"
    before = sorted(p.name for p in folder.iterdir())
    r = requests.post(hub.url + "/user/student1/scip/api/course/reset", json={"course": "intro-gpu"},
                      headers=hub.headers, timeout=60)
    assert r.status_code == 403 and "neither the owner of this server nor an instructor of intro-gpu" in r.text, r.text
    r = requests.post(hub.url + "/user/student1/scip/api/course/sync", json={"course": "intro-gpu"},
                      headers=hub.headers, timeout=60)
    assert r.status_code == 403, r.text
    r = requests.get(hub.url + "/user/student1/scip/api/course/launch?course=intro-gpu", headers=hub.headers,
                     allow_redirects=False, timeout=60)
    assert r.status_code == 403 and "only in your own server" in r.text, r.text
    assert sorted(p.name for p in folder.iterdir()) == before
    # reading status stays open to whoever the hub lets in (the hub decided already)
    r = requests.get(hub.url + "/user/student1/scip/api/course/status?course=intro-gpu", headers=hub.headers, timeout=60)
    assert r.status_code == 200, r.text


def test_instructor_resets_a_student_through_the_hub(hub, launched):
    folder = hub.state_dir / "hub" / "home" / "student1" / "courses" / "intro-gpu"
    r = requests.post(hub.url + "/user/student1/scip/api/course/reset", json={"course": "intro-gpu"},
                      headers=_token(hub, "instructor1"), timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["backup"].endswith(tuple(p.name for p in folder.parent.glob("intro-gpu.backup-*")))
    assert (folder / "01-getting-started.ipynb").is_file()


def test_instructor_view_lists_students_and_exports_csv(hub, launched):
    s = hub.login("instructor1")
    r = s.get(hub.url + "/services/scip-courses/course/intro-gpu", timeout=60)
    assert r.status_code == 200, r.text
    assert 'data-student="student1"' in r.text and "running" in r.text
    assert "/hub/scip/course/intro-gpu/launch?notebook=01-getting-started.ipynb" in r.text
    csv = s.get(hub.url + "/services/scip-courses/course/intro-gpu.csv", timeout=60)
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    header, row = csv.text.splitlines()[:2]
    assert header.startswith("student,server,last_activity,material_version") and row.startswith("student1,running,")


NOTEBOOK = "01-getting-started.ipynb"


def test_instructor_sees_the_progress_the_students_own_server_reports(hub, launched):
    """The same path as on Kubernetes: the student's server reports, the service never reads the folder."""
    execute_notebook(hub.url, "student1", f"courses/intro-gpu/{NOTEBOOK}", _token(hub, "student1"))
    instructor = hub.login("instructor1")
    row = wait_for_row(instructor, hub.url, "intro-gpu", "student1", lambda r: r[NOTEBOOK] == "executed", hub.log_tail)
    assert row["server"] == "running" and row["progress_reported_at"] and row["update_available"] == "no"
    page = instructor.get(hub.url + "/services/scip-courses/course/intro-gpu", timeout=60).text
    assert '<td class="executed">executed</td>' in page and f'<time datetime="{row["progress_reported_at"]}">' in page


def test_a_stopped_server_shows_its_last_report(hub, launched):
    instructor = hub.login("instructor1")
    before = wait_for_row(instructor, hub.url, "intro-gpu", "student1", lambda r: r[NOTEBOOK] == "executed", hub.log_tail)
    hub.stop_server("student1")
    row = wait_for_row(instructor, hub.url, "intro-gpu", "student1", lambda r: r["server"] == "stopped", hub.log_tail)
    assert row[NOTEBOOK] == "executed" and row["progress_reported_at"] >= before["progress_reported_at"]


@pytest.mark.parametrize(
    "who, body, status, words",
    [
        ("student1", {"course": "intro-gpu", "username": "student2"}, 400, "username: unknown field"),
        ("student1", {"course": "intro-gpu", "opened": ["../../x.ipynb"]}, 400, "opened:"),
        ("student1", {"course": "no-such-course"}, 404, "course: no course 'no-such-course' in the registry"),
        ("instructor1", {"course": "intro-gpu"}, 403, "instructor1 is not a student of intro-gpu"),
        ("researcher1", {"course": "intro-gpu"}, 403, ""),  # no student role: the hub's auth refuses it
        ("admin-service", {"course": "intro-gpu"}, 403, "token: belongs to service"),
    ],
    ids=["names-someone-else", "path-escapes", "unknown-course", "an-instructor", "not-enrolled", "a-service"],
)
def test_only_a_student_reports_and_only_for_themselves(hub, who, body, status, words):
    headers = hub.headers if who == "admin-service" else _token(hub, who)
    before = progress_rows(hub.login("instructor1"), hub.url, "intro-gpu").get("student1", {})
    r = requests.post(hub.url + "/services/scip-courses/api/report", json=body, headers=headers, timeout=60)
    assert r.status_code == status and words in r.text, (r.status_code, r.text[:300])
    after = progress_rows(hub.login("instructor1"), hub.url, "intro-gpu").get("student1", {})
    assert after.get("progress_reported_at") == before.get("progress_reported_at")  # nothing was stored


@pytest.mark.parametrize("user", ["student1", "researcher1"])
def test_instructor_view_is_closed_to_non_instructors(hub, user):
    s = hub.login(user)
    r = s.get(hub.url + "/services/scip-courses/course/intro-gpu", timeout=60)
    assert r.status_code == 403


@pytest.mark.parametrize(
    "user, course, status, words",
    [
        ("researcher1", "intro-gpu", 403, "not enrolled in intro-gpu"),
        ("student1", "llm-finetune-2025", 403, "llm-finetune-2025 ended on 2025-04-30"),
        ("student1", "no-such-course", 404, "no course"),
    ],
)
def test_launch_link_refusals_say_why(hub, user, course, status, words):
    s = hub.login(user)
    r = s.get(hub.url + LAUNCH.format(course), allow_redirects=False, timeout=30)
    assert r.status_code == status and words in r.text


def test_ended_course_no_longer_grants_its_profile(hub):
    hub.stop_server("student1")
    r = requests.post(hub.api_url + "/users/student1/server", json={"profile": "mig-3g-40gb"},
                      headers=_token(hub, "student1"), timeout=60)
    assert r.status_code == 403, r.text
    assert "profile" in r.json()["message"] and "mig-1g-10gb" in r.json()["message"]
    assert "" not in hub.user("student1")["servers"]


def test_registry_changes_reach_the_hub_groups(hub):
    """A course added to the registry while the hub runs: the service's pass creates its groups."""
    api = HubAPI(hub.api_url, hub.token)
    new = Course(id="pop-up", title="Pop-up workshop", instructors=["instructor1"],
                 students={"users": ["student1"], "groups": ["researchers"]}, material={"path": "."},
                 profiles=["cpu-small"], start=dt.date(2026, 1, 1), end=dt.date(2099, 1, 1))
    try:
        changes = asyncio.run(sync_groups(api, Registry(courses=[new])))
        assert {(c.group, c.action) for c in changes} >= {("course-pop-up-students", "create"),
                                                          ("course-pop-up-instructors", "create")}
        assert sorted(hub.api("GET", "/groups/course-pop-up-students").json()["users"]) == ["researcher1", "student1"]
        assert asyncio.run(sync_groups(api, Registry(courses=[new]))) == []  # a second pass changes nothing
    finally:
        for g in ("course-pop-up-students", "course-pop-up-instructors"):
            hub.api("DELETE", f"/groups/{g}")


@pytest.mark.parametrize(
    "user, options, status, words",
    [
        ("researcher1", {"profile": "cpu-small", "course": "intro-gpu"}, 403, "course: you are not enrolled in intro-gpu"),
        ("student1", {"profile": "cpu-small", "course": "llm-finetune-2025"}, 403,
         "course: llm-finetune-2025 ended on 2025-04-30; allowed values: intro-gpu"),
        ("student1", {"profile": "cpu-small", "course": "nope"}, 400, "course: no course 'nope'"),
    ],
)
def test_spawn_refuses_a_course_the_user_does_not_take(hub, user, options, status, words):
    hub.stop_server(user)
    r = requests.post(hub.api_url + f"/users/{user}/server", json=options, headers=_token(hub, user), timeout=60)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    assert "" not in hub.user(user)["servers"]
