"""Hostile input at the hub's boundaries, on a real JupyterHub + CHP: REST `user_options` and launch links.

Every case gets a clear 4xx naming the field (never a 500 or a traceback),
starts no server, writes no ledger row and changes no group membership.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.hub
LONG = "x" * 20_000

#: (id, request body, status, field the message starts with)
REST_CORPUS = [
    ("not-an-object", {"user_options": ["cpu-small"]}, 400, "user_options"),
    ("string", {"user_options": "h100-full"}, 400, "user_options"),
    ("image", {"profile": "cpu-small", "image": "evil/miner:latest"}, 400, "image"),
    ("cmd", {"profile": "cpu-small", "cmd": ["sh", "-c", "id"]}, 400, "cmd"),
    ("env", {"profile": "cpu-small", "environment": {"LD_PRELOAD": "/tmp/x.so"}}, 400, "environment"),
    ("proto", {"__proto__": {"admin": True}}, 400, "__proto__"),
    ("profile-option", {"profile": "cpu-small", "profile-option-cpu-small--image": "x"}, 400, "profile-option-cpu-small--image"),
    ("profile-int", {"profile": 7}, 400, "profile"),
    ("profile-null-byte", {"profile": "cpu-small\u0000"}, 400, "profile"),
    ("profile-huge", {"profile": LONG}, 400, "profile"),
    ("profile-script", {"profile": "<script>alert(1)</script>"}, 400, "profile"),
    ("profile-forbidden", {"profile": "h100-full"}, 403, "profile"),
    ("course-path", {"profile": "cpu-small", "course": "../intro-gpu"}, 400, "course"),
    ("course-int", {"profile": "cpu-small", "course": 3}, 400, "course"),
    ("course-unknown", {"profile": "cpu-small", "course": "no-such-course"}, 400, "course"),
    ("course-ended", {"profile": "cpu-small", "course": "llm-finetune-2025"}, 403, "course"),
    ("notebook-escape", {"profile": "cpu-small", "course": "intro-gpu", "notebook": "../../../etc/passwd"}, 400, "notebook"),
    ("notebook-absolute", {"profile": "cpu-small", "course": "intro-gpu", "notebook": "/etc/shadow"}, 400, "notebook"),
    ("notebook-list", {"profile": "cpu-small", "course": "intro-gpu", "notebook": ["a"]}, 400, "notebook"),
]


def _ledger_rows(hub) -> dict[str, int]:
    path = hub.ledger_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table' and name like 'scip_%'")]
        return {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}


def _groups_of(hub, user: str) -> list[str]:
    return sorted(hub.user(user)["groups"])


def _no_server(hub, user: str) -> None:
    model = hub.user(user)
    assert model["servers"] == {} and model["pending"] is None, model


@pytest.fixture
def quiet_student(hub):
    hub.stop_server("student1")
    yield "student1"
    hub.stop_server("student1")


@pytest.mark.parametrize("body, status, field", [c[1:] for c in REST_CORPUS], ids=[c[0] for c in REST_CORPUS])
def test_hostile_user_options_through_the_rest_api(hub, quiet_student, body, status, field):
    rows, groups = _ledger_rows(hub), _groups_of(hub, quiet_student)
    r = hub.api("POST", f"/users/{quiet_student}/server", json=body)
    assert r.status_code == status, r.text[:300]
    message = r.json()["message"]
    # (a body that is not an object is refused by JupyterHub itself: "user_options must be an object or null")
    assert message.startswith((f"{field}:", f"{field} ")) and "Traceback" not in message, message[:300]
    assert len(message) < 800
    _no_server(hub, quiet_student)
    assert _ledger_rows(hub) == rows and _groups_of(hub, quiet_student) == groups


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe\x00", b"[" * 10_000, b'{"profile": "cpu-small"' + b" " * 10])
def test_a_body_that_is_not_json_is_a_400(hub, quiet_student, raw):
    import requests

    r = requests.post(f"{hub.api_url}/users/{quiet_student}/server", data=raw, timeout=60,
                      headers={**hub.headers, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    _no_server(hub, quiet_student)


#: (id, course path segment, query, status)
LAUNCH_CORPUS = [
    ("script-course", quote("<script>alert(1)</script>", safe=""), "", 404),
    ("dotdot-course", "..%2F..%2Fhub%2Fadmin", "", 404),
    ("long-course", "c" * 3000, "", 404),
    ("unicode-course", quote("intro-gpu\u2010x"), "", 404),
    ("notebook-escape", "intro-gpu", "?notebook=..%2F..%2F..%2Fetc%2Fpasswd", 400),
    ("notebook-absolute", "intro-gpu", "?notebook=%2Fetc%2Fpasswd", 400),
    ("notebook-hidden", "intro-gpu", "?notebook=.ssh%2Fauthorized_keys", 400),
    ("notebook-backslash", "intro-gpu", "?notebook=..%5C..%5Cx", 400),
    # (control characters never reach us: tornado's get_argument turns them into spaces)
    ("notebook-script", "intro-gpu", "?notebook=%3Cscript%3Ealert(1)%3C%2Fscript%3E%2F..%2Fx", 400),
    ("notebook-huge", "intro-gpu", "?notebook=" + "a%2F" * 300 + "x", 400),
    ("ended-course", "llm-finetune-2025", "", 403),
]


@pytest.mark.parametrize("course, query, status", [c[1:] for c in LAUNCH_CORPUS], ids=[c[0] for c in LAUNCH_CORPUS])
@pytest.mark.parametrize("site", ["same-origin", "cross-site"])
def test_hostile_launch_link_parameters(hub, quiet_student, course, query, status, site):
    s = hub.login(quiet_student)
    rows, groups = _ledger_rows(hub), _groups_of(hub, quiet_student)
    r = s.get(f"{hub.url}/hub/scip/course/{course}/launch{query}", allow_redirects=False, timeout=30,
              headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate"})
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert "<script>alert(1)" not in r.text and "Traceback" not in r.text
    _no_server(hub, quiet_student)
    assert _ledger_rows(hub) == rows and _groups_of(hub, quiet_student) == groups
