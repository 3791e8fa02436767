"""The course endpoints of the server extension, in a real Jupyter server.

The server runs as the unprivileged account scip-user (never root), with the
scip_jupyter.server extension enabled as installed, and a registry whose
material folder the test edits as the instructor would.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from tests.fixtures.common import ROOT, VENV_BIN, free_port, wait_for_port

pytestmark = pytest.mark.server

COURSES = """\
courses:
  - id: demo
    title: Demo course
    instructors: [teach]
    students:
      users: [alice]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""


def _notebook(text: str) -> str:
    return json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": text}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


class _Reports(BaseHTTPRequestHandler):
    """Stands in for the scip-courses service: records each report the server sends (who, what)."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append((self.path, self.headers.get("Authorization"), json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def reports():
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Reports)
    receiver.received = []
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.shutdown()


@pytest.fixture(scope="module")
def server(reports):
    base = ROOT / ".state" / f"test-course-endpoint-{uuid.uuid4().hex[:8]}"
    (base / "material" / "week1").mkdir(parents=True)
    os.chmod(base, 0o755)
    (base / "material" / "intro.ipynb").write_text(_notebook("intro v1"))
    (base / "material" / "week1" / "lab.ipynb").write_text(_notebook("lab v1"))
    (base / "courses.yaml").write_text(COURSES)
    home = base / "home"
    home.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        acct = pwd.getpwnam("scip-user")
        os.chown(home, acct.pw_uid, acct.pw_gid)
        prefix = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "scip-user", "--"]
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "HOME": str(home), "SCIP_COURSES_FILE": str(base / "courses.yaml"),
           "JUPYTER_TOKEN": token, "PATH": f"{VENV_BIN}:/usr/bin:/bin"}
    for key in ("JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR"):
        env.pop(key, None)
    # where the server reports its course progress, with its own (here: a test) token
    env["SCIP_COURSES_SERVICE_URL"] = f"http://127.0.0.1:{reports.server_address[1]}/services/scip-courses/"
    env["JUPYTERHUB_API_TOKEN"] = "server-own-token"
    log = open(base / "server.log", "wb")
    proc = subprocess.Popen(
        [*prefix, str(VENV_BIN / "jupyter-server"), "--ip=127.0.0.1", f"--port={port}", "--no-browser",
         f"--ServerApp.root_dir={home}", "--ServerApp.port_retries=0"],
        cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=60, what="jupyter server")
        session = requests.Session()
        session.headers["Authorization"] = f"token {token}"
        yield {"url": f"http://127.0.0.1:{port}", "s": session, "home": home, "material": base / "material",
               "log": base / "server.log"}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _api(server, method, path, **kw):
    return server["s"].request(method, f"{server['url']}/scip/api/{path}", timeout=60, **kw)


def test_endpoints_refuse_requests_without_credentials(server):
    for method, path in (("GET", "course/status?course=demo"), ("POST", "course/sync")):
        r = requests.request(method, f"{server['url']}/scip/api/{path}", json={"course": "demo"}, timeout=30)
        assert r.status_code == 403, r.text
    assert not (server["home"] / "courses").exists()


def test_sync_delivers_then_keeps_the_students_edit(server):
    r = _api(server, "POST", "course/sync", json={"course": "demo"})
    assert r.status_code == 200, r.text
    assert r.json()["summary"] == {"add": 2}
    folder = server["home"] / "courses" / "demo"
    assert (folder / "week1" / "lab.ipynb").is_file()
    if os.geteuid() == 0:  # written by the server, i.e. the student's account
        assert (folder / "intro.ipynb").stat().st_uid == pwd.getpwnam("scip-user").pw_uid

    # the student edits through the contents API, the instructor publishes an update
    model = {"type": "notebook", "content": json.loads(_notebook("my answers"))}
    assert server["s"].put(f"{server['url']}/api/contents/courses/demo/intro.ipynb", json=model, timeout=30).ok
    (server["material"] / "intro.ipynb").write_text(_notebook("intro v2"))
    (server["material"] / "week1" / "lab.ipynb").write_text(_notebook("lab v2"))

    status = _api(server, "GET", "course/status?course=demo").json()
    assert status["update_available"] and status["pending"] == {"rename": 1, "update": 1}
    assert status["changed"] == ["intro.ipynb"]

    r = _api(server, "POST", "course/sync", json={"course": "demo"})
    assert r.json()["summary"] == {"rename": 1, "update": 1}
    assert "my answers" in (folder / "intro.ipynb").read_text()
    assert "lab v2" in (folder / "week1" / "lab.ipynb").read_text()
    status = _api(server, "GET", "course/status?course=demo").json()
    assert not status["update_available"] and status["pending"] == {}


def test_opening_a_course_notebook_is_recorded(server):
    _api(server, "POST", "course/sync", json={"course": "demo"})
    assert server["s"].get(f"{server['url']}/api/contents/courses/demo/week1/lab.ipynb", timeout=30).ok
    # the contents event reaches our listener asynchronously: poll, bounded
    deadline = time.monotonic() + 15
    while True:
        status = _api(server, "GET", "course/status?course=demo").json()
        if "week1/lab.ipynb" in status["opened"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "week1/lab.ipynb" in status["opened"]


def test_the_server_reports_its_own_progress_to_the_course_service(server, reports):
    _api(server, "POST", "course/sync", json={"course": "demo"})
    url = f"{server['url']}/api/contents/courses/demo/intro.ipynb"
    nb = server["s"].get(url, timeout=30).json()["content"]
    nb["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "source": ["1"], "execution_count": 1})
    assert server["s"].put(url, json={"type": "notebook", "format": "json", "content": nb}, timeout=30).ok
    for _ in range(150):  # reports go out a moment after the events: poll, bounded
        last = reports.received[-1][2] if reports.received else {}
        if "intro.ipynb" in last.get("executed", []):
            break
        time.sleep(0.1)
    path, auth, body = reports.received[-1]
    assert path == "/services/scip-courses/api/report" and auth == "token server-own-token"
    assert body["course"] == "demo" and "intro.ipynb" in body["executed"] and "intro.ipynb" in body["opened"]
    assert set(body) == {"course", "delivered_version", "synced_at", "changed", "opened", "executed"}
    assert body["delivered_version"] == _api(server, "GET", "course/status?course=demo").json()["delivered_version"]
    assert "intro.ipynb" in body["changed"]  # the student's save is their edit
    # a burst of events (sync, open, save) is a few reports, not one per event
    assert len(reports.received) < 10


def test_reset_keeps_a_backup(server):
    _api(server, "POST", "course/sync", json={"course": "demo"})
    r = _api(server, "POST", "course/reset", json={"course": "demo"})
    assert r.status_code == 200, r.text
    backup = Path(r.json()["backup"])
    assert backup.parent == server["home"] / "courses" and "my answers" in (backup / "intro.ipynb").read_text()
    assert "intro v2" in (server["home"] / "courses" / "demo" / "intro.ipynb").read_text()


def test_launch_syncs_and_redirects_to_the_notebook_in_jupyterlab(server):
    r = _api(server, "GET", "course/launch?course=demo&notebook=week1/lab.ipynb", allow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == "/lab/tree/courses/demo/week1/lab.ipynb"


@pytest.mark.parametrize(
    "method, path, body, status, words",
    [
        ("GET", "course/status?course=nope", None, 404, "course: no course 'nope'"),
        ("GET", "course/status?course=../etc", None, 400, "course: must be a course id"),
        ("GET", "course/status", None, 400, "course: required"),
        ("POST", "course/sync", {"course": "demo", "force": True}, 400, "force: unknown field"),
        ("POST", "course/sync", {"course": 3}, 400, "course: required"),
        ("GET", "course/launch?course=demo&notebook=../../etc/passwd", None, 400, "notebook: must be a relative path"),
    ],
)
def test_bad_requests_name_the_field(server, method, path, body, status, words):
    r = _api(server, method, path, json=body)
    assert r.status_code == status, r.text
    assert words in r.text
