"""Hostile request bodies and parameters at the server extension (`/scip/api/...`), in a real Jupyter server.

The server is the one tests/integration/test_course_endpoint.py starts (as
scip-user, extension enabled as installed). Each case gets a 4xx naming the
field, never a 500 or a traceback, and writes nothing in the student's home.
"""

from __future__ import annotations

import json
import os
import pwd

import pytest

from tests.integration.test_course_endpoint import reports, server  # noqa: F401  (the real server fixture)

pytestmark = pytest.mark.server


def _tree(home) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if ".local" not in p.parts and ".cache" not in p.parts
                  and ".ipython" not in p.parts and ".jupyter" not in p.parts)


#: (id, raw body, status, words)
BODIES = [
    ("not-json", b"{course: demo", 400, "body: must be JSON"),
    ("not-utf8", b"\xff\xfe{}", 400, "body:"),
    ("array", b'["demo"]', 400, "body: must be a JSON object"),
    ("string", b'"demo"', 400, "body: must be a JSON object"),
    ("number", b"3", 400, "body: must be a JSON object"),
    ("null", b"null", 400, "body: must be a JSON object"),
    ("deep", b"[" * 100_000 + b"]" * 100_000, 400, "body:"),
    ("course-list", b'{"course": ["demo"]}', 400, "course: required"),
    ("course-object", b'{"course": {"id": "demo"}}', 400, "course: required"),
    ("course-int", b'{"course": 3}', 400, "course: required"),
    ("course-path", b'{"course": "../../etc"}', 400, "course: must be a course id"),
    ("course-script", b'{"course": "<script>alert(1)</script>"}', 400, "course: must be a course id"),
    ("course-huge", json.dumps({"course": "d" * 1_000_000}).encode(), 400, "course: must be a course id"),
    ("unknown-key", b'{"course": "demo", "path": "/etc"}', 400, "path: unknown field"),
    ("proto", b'{"course": "demo", "__proto__": {}}', 400, "__proto__: unknown field"),
]


@pytest.mark.parametrize("endpoint", ["course/sync", "course/reset"])
@pytest.mark.parametrize("body, status, words", [b[1:] for b in BODIES], ids=[b[0] for b in BODIES])
def test_hostile_course_bodies(server, endpoint, body, status, words):
    before = _tree(server["home"])
    r = server["s"].post(f"{server['url']}/scip/api/{endpoint}", data=body, timeout=60,
                         headers={"Content-Type": "application/json"})
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert words in r.text and "Traceback" not in r.text and "<script>alert" not in r.text
    assert _tree(server["home"]) == before


#: (id, query, status, words)
QUERIES = [
    ("course-path", "course/status?course=..%2F..%2Fetc", 400, "course: must be a course id"),
    ("course-huge", "course/status?course=" + "d" * 5000, 400, "course: must be a course id"),
    ("course-script", "course/status?course=%3Cscript%3E", 400, "course: must be a course id"),
    ("course-twice", "course/status?course=demo&course=..", 400, "course"),
    ("launch-notebook-escape", "course/launch?course=demo&notebook=..%2F..%2F.ssh%2Fid_rsa", 400, "notebook:"),
    ("launch-notebook-absolute", "course/launch?course=demo&notebook=%2Fetc%2Fpasswd", 400, "notebook:"),
    ("launch-notebook-backslash", "course/launch?course=demo&notebook=a%5C..%5C..%5Cb", 400, "notebook:"),
    ("launch-notebook-huge", "course/launch?course=demo&notebook=" + "a%2F" * 300, 400, "notebook:"),
]


@pytest.mark.parametrize("query, status, words", [q[1:] for q in QUERIES], ids=[q[0] for q in QUERIES])
def test_hostile_course_queries(server, query, status, words):
    before = _tree(server["home"])
    r = server["s"].get(f"{server['url']}/scip/api/{query}", allow_redirects=False, timeout=60)
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert words in r.text and "Traceback" not in r.text
    assert _tree(server["home"]) == before


#: (id, job id path segment, body, status, words)
ARC = [
    ("id-path", "..%2F..%2Fetc", b'{"action": "cancel"}', 400, "job"),
    ("id-shell", "1%3Brm%20-rf%20~", b'{"action": "cancel"}', 400, "job"),
    ("id-script", "%3Cscript%3E", b'{"action": "cancel"}', 400, "job"),
    ("id-huge", "9" * 5000, b'{"action": "cancel"}', 400, "job"),
    ("id-negative", "-5", b'{"action": "cancel"}', 400, "job"),
    ("action-delete-all", "123", b'{"action": "cancel-all"}', 400, "action:"),
    ("action-list", "123", b'{"action": ["cancel"]}', 400, "action:"),
    ("body-array", "123", b'["cancel"]', 400, "action:"),
    ("body-not-json", "123", b"cancel", 400, "body:"),
    ("body-deep", "123", b"[" * 100_000 + b"]" * 100_000, 400, "body:"),
]


@pytest.mark.parametrize("job, body, status, words", [a[1:] for a in ARC], ids=[a[0] for a in ARC])
def test_hostile_arc_job_requests(server, job, body, status, words):
    r = server["s"].post(f"{server['url']}/scip/api/arc/jobs/{job}", data=body, timeout=60,
                         headers={"Content-Type": "application/json"})
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert words in r.text.lower() or words in r.text, r.text[:300]
    assert "Traceback" not in r.text and r.headers["Content-Type"].startswith("application/json")


#: (id, job id path segment, body, French words) -- the same refusals for a person whose browser asks for French
ARC_FR = [
    ("id-negative", "-5", b'{"action": "cancel"}', "job_id : '-5' n’est pas un numéro de tâche Slurm"),
    ("action-delete-all", "123", b'{"action": "cancel-all"}', "action : 'cancel-all' n’est pas permise ; valeurs permises : 'cancel'"),
    ("body-not-json", "123", b"cancel", 'body : ce n’est pas du JSON ; envoyez {"action": "cancel"}'),
]


@pytest.mark.parametrize("job, body, words", [a[1:] for a in ARC_FR], ids=[a[0] for a in ARC_FR])
def test_arc_job_refusals_follow_accept_language(server, job, body, words):
    """Accept-Language: fr gives the French words (issue 14); the field name before the colon stays."""
    r = server["s"].post(f"{server['url']}/scip/api/arc/jobs/{job}", data=body, timeout=60,
                         headers={"Content-Type": "application/json", "Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert words in r.json()["message"], r.text[:300]
    r = server["s"].post(f"{server['url']}/scip/api/arc/jobs/{job}", data=body, timeout=60,
                         headers={"Content-Type": "application/json", "Accept-Language": "en"})
    assert r.status_code == 400 and "n’est pas" not in r.json()["message"] and "ce n’est" not in r.json()["message"]


@pytest.mark.parametrize("manifest", ['{"files": []}', '{"files": "x", "offered": 3}', "[]", '"x"', "{"])
def test_a_manifest_of_the_wrong_shape_does_not_break_status_sync_or_launch(server, manifest):
    folder = server["home"] / "courses" / "demo"
    assert server["s"].post(f"{server['url']}/scip/api/course/sync", json={"course": "demo"}, timeout=60).ok
    (folder / ".scip-course.json").write_text(manifest)
    if os.geteuid() == 0:
        acct = pwd.getpwnam("scip-user")
        os.chown(folder / ".scip-course.json", acct.pw_uid, acct.pw_gid)
    r = server["s"].get(f"{server['url']}/scip/api/course/status?course=demo", timeout=60)
    assert r.status_code == 200, r.text
    r = server["s"].post(f"{server['url']}/scip/api/course/sync", json={"course": "demo"}, timeout=60)
    assert r.status_code == 200, r.text
    r = server["s"].get(f"{server['url']}/scip/api/course/launch?course=demo", allow_redirects=False, timeout=60)
    assert r.status_code == 302, r.text
    assert json.loads((folder / ".scip-course.json").read_text())["course"] == "demo"  # a good manifest again
