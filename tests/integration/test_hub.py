"""The embedded hub, for real: JupyterHub + configurable-http-proxy from `scip-jupyter up`.

Login over HTTP through the proxy, spawning through the REST API and the form,
refusals that start nothing, and the spawn form's content.
"""

from __future__ import annotations

import os
import pwd
import re
import uuid

import pytest
import requests
from markupsafe import escape

from tests.fixtures.common import is_root

pytestmark = pytest.mark.hub

STUDENT_PROFILES = ["cpu-small", "mig-1g-10gb"]


def _server_process(hub, username: str) -> tuple[int, dict[str, str]]:
    """(uid, environment) of a running server's process, read from /proc via the pid the hub keeps."""
    state = hub.user(username)["servers"][""]["state"]
    pid = state["pid"]
    status = open(f"/proc/{pid}/status").read()
    uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    return uid, env


def _assert_no_server(hub, username: str) -> None:
    model = hub.user(username)
    assert model["servers"] == {}, model
    assert model["pending"] is None, model
    assert model["server"] is None, model


@pytest.fixture
def researcher_server(hub):
    """researcher1 with no server before and after the test."""
    hub.stop_server("researcher1")
    yield "researcher1"
    hub.stop_server("researcher1")


def test_demo_user_logs_in_through_proxy(hub):
    session = hub.login("student1")
    home = session.get(hub.url + "/hub/home", timeout=30)
    assert home.status_code == 200
    assert "student1" in home.text
    assert session.get(hub.url + "/hub/api/user", timeout=30).json()["name"] == "student1"


def test_wrong_password_is_refused(hub):
    with pytest.raises(AssertionError, match="refused: HTTP 403"):
        hub.login("student1", password="not-the-password")


def test_researcher_spawns_allowed_profile_through_rest_and_reaches_server(hub, researcher_server):
    r = hub.api("POST", f"/users/{researcher_server}/server", json={"profile": "mig-3g-40gb"})
    assert r.status_code in (201, 202), r.text
    server = hub.wait_for_server(researcher_server)
    assert server["user_options"] == {"profile": "mig-3g-40gb"}

    status = hub.get(f"/user/{researcher_server}/api/status")
    assert status.status_code == 200, status.text
    assert "started" in status.json()

    uid, env = _server_process(hub, researcher_server)
    expected = pwd.getpwnam(f"jupyter-{researcher_server}").pw_uid if is_root() else os.geteuid()  # per-person account
    assert uid == expected and uid != 0
    assert env["SCIP_PROFILE"] == "mig-3g-40gb"
    assert env["SCIP_LABEL_USER"] == researcher_server
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["SCIP_GPU"] == "none"  # no GPU on this machine
    assert "MEM_LIMIT" in env and env["MEM_LIMIT"] == str(32 * 10**9)

    # A file the server writes belongs to the account it runs as, in the user's working directory.
    r = requests.put(
        f"{hub.url}/user/{researcher_server}/api/contents/owned-by.txt",
        headers=hub.headers,
        json={"type": "file", "format": "text", "content": "hello"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    written = hub.state_dir / "hub" / "home" / researcher_server / "owned-by.txt"
    assert written.stat().st_uid == expected


@pytest.mark.parametrize(
    "options, status, named_field",
    [
        pytest.param({"profile": "h100-full"}, 403, "profile", id="full-h100-not-allowed"),
        pytest.param({"profile": "mig-3g-40gb"}, 403, "profile", id="researcher-slice-not-allowed"),
        pytest.param({"profile": "no-such-gpu"}, 400, "profile", id="unknown-profile"),
        pytest.param({"profile": ["cpu-small"]}, 400, "profile", id="profile-not-a-string"),
        pytest.param({"profile": "cpu-small", "image": "evil:latest"}, 400, "image", id="unknown-key"),
    ],
)
def test_student_refused_profile_starts_nothing(hub, options, status, named_field):
    hub.stop_server("student1")
    r = hub.api("POST", "/users/student1/server", json={"user_options": options})
    assert r.status_code == status, r.text
    message = r.json()["message"]
    assert message.startswith(f"{named_field}:"), message
    if named_field == "profile":
        assert "allowed values: " + ", ".join(STUDENT_PROFILES) in message
    _assert_no_server(hub, "student1")


def test_student_cannot_request_full_h100(hub):
    """The headline case, in KubeSpawner's raw form (body = user_options)."""
    hub.stop_server("student1")
    r = hub.api("POST", "/users/student1/server", json={"profile": "h100-full"})
    assert r.status_code == 403
    assert r.json()["message"] == (
        "profile: profile 'h100-full' is not allowed for your groups; allowed values: cpu-small, mig-1g-10gb"
    )
    _assert_no_server(hub, "student1")
    # The refused choice did not become the default: a plain spawn now gets the default profile.
    r = hub.api("POST", "/users/student1/server")
    assert r.status_code in (201, 202), r.text
    assert hub.wait_for_server("student1")["user_options"] == {"profile": "cpu-small"}
    hub.stop_server("student1")


def test_student_form_post_of_full_h100_is_refused(hub):
    hub.stop_server("student1")
    session = hub.login("student1")
    xsrf = session.cookies.get("_xsrf")
    r = session.post(
        f"{hub.url}/hub/spawn/student1?_xsrf={xsrf}", data={"profile": "h100-full"}, allow_redirects=False, timeout=60
    )
    assert r.status_code == 403
    assert "profile: profile &#39;h100-full&#39; is not allowed" in r.text
    _assert_no_server(hub, "student1")


def _radio_values(page: str) -> list[str]:
    return re.findall(r'<input[^>]*name="profile"[^>]*value="([^"]*)"', page)


@pytest.mark.parametrize(
    "username, profiles",
    [
        ("student1", STUDENT_PROFILES),
        ("instructor1", ["cpu-small", "mig-1g-10gb", "mig-3g-40gb"]),
        ("researcher1", ["cpu-small", "mig-1g-10gb", "mig-3g-40gb", "h100-full"]),
    ],
)
def test_spawn_form_lists_exactly_the_allowed_profiles(hub, username, profiles):
    hub.stop_server(username)
    session = hub.login(username)
    page = session.get(f"{hub.url}/hub/spawn/{username}", timeout=30)
    assert page.status_code == 200
    assert _radio_values(page.text) == profiles
    assert "This host has no GPU" in page.text


def test_spawn_form_escapes_profile_text(hub):
    """A profile named with <script> (test catalog, group `testers`) comes out escaped."""
    name = f"formtester-{uuid.uuid4().hex[:6]}"
    assert hub.api("POST", f"/users/{name}").status_code == 201
    assert hub.api("POST", "/groups/testers").status_code in (201, 409)
    assert hub.api("POST", "/groups/testers/users", json={"users": [name]}).status_code == 200
    session = hub.login(name)
    page = session.get(f"{hub.url}/hub/spawn/{name}", timeout=30).text
    assert _radio_values(page) == ["escape-check"]
    assert "<script>alert" not in page
    assert str(escape("<script>alert('x')</script> & co")) in page
    assert "&lt;b&gt;site&lt;/b&gt;" in page


def test_student_picks_profile_in_form_and_jupyterlab_opens(hub):
    """The person's path: log in, submit the form with a profile, land in JupyterLab (OAuth included)."""
    hub.stop_server("student1")
    session = hub.login("student1")
    xsrf = session.cookies.get("_xsrf")
    r = session.post(f"{hub.url}/hub/spawn/student1?_xsrf={xsrf}", data={"profile": "mig-1g-10gb"}, timeout=60)
    assert r.status_code == 200, r.text[:500]
    server = hub.wait_for_server("student1")
    assert server["user_options"] == {"profile": "mig-1g-10gb"}
    lab = session.get(f"{hub.url}/user/student1/lab", timeout=60)
    assert lab.status_code == 200
    assert lab.url.startswith(f"{hub.url}/user/student1/lab")
    assert "JupyterLab" in lab.text
    # The demo course material was copied into the new working directory.
    listing = session.get(f"{hub.url}/user/student1/api/contents", timeout=30)
    assert listing.status_code == 200, listing.text[:300]
    assert "notebooks" in [item["name"] for item in listing.json()["content"]]
    hub.stop_server("student1")
