"""The rendered chart boots a real hub that serves a course launch link end to end.

The umbrella chart is rendered with the real z2jh 4.4.0 dependency; the hub
pod's ConfigMap, Secret and our scip-jupyter-config are laid out where the hub
pod sees them (/usr/local/etc/jupyterhub/..., /usr/local/etc/scip) in a private
mount namespace, and a real JupyterHub runs z2jh's jupyterhub_config.py, which
loads hub_config/k8s.py. Kubernetes is kmock plus the fake kubelet, whose runtime
(tests/fixtures/k8s_hub.py) starts a real single-user server for each pod.

A student follows the course launch link -> a pod with the course profile ->
the single-user server runs -> the material is synced into the home volume ->
the student executes the course notebook and the course's instructor sees it on
the instructor page and CSV (the student's own server reports it; the hub pod
never mounts the student's volume) -> stopping deletes the pod and cancels that
server's Slurm jobs on the local Slurm, and the instructor still sees the last report.
Needs root (mount namespaces), like the other hub tests that run servers as other users.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import helm_python as helm
import kubernetes_validate
import pytest
import requests
import yaml

from scip_jupyter.arc.tags import JobTags
from tests.fixtures.chart import chart_with_z2jh, manifests
from tests.fixtures.common import ROOT, free_port, is_root
from tests.fixtures.course_progress import card_version, execute_notebook, home_course_card, wait_for_row
from tests.fixtures.k8s_hub import PodRunner, start_chart_hub
from tests.pss import violations as pss_violations

pytestmark = [pytest.mark.k8s, pytest.mark.hub, pytest.mark.slurm, pytest.mark.asyncio(loop_scope="session")]

COURSE = "k8s-intro"
NOTEBOOK = "01-intro.ipynb"
LAUNCH = f"/hub/scip/course/{COURSE}/launch?notebook={NOTEBOOK}"


def material() -> Path:
    """Course material readable by the pod's user (uid 1000): a world-readable folder under /tmp."""
    folder = Path(tempfile.mkdtemp(prefix="scip-k8s-material-", dir="/tmp"))
    folder.chmod(0o755)
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Intro on Kubernetes"]}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / NOTEBOOK).write_text(json.dumps(notebook))
    (folder / NOTEBOOK).chmod(0o644)
    return folder


def local_slurm_preset(slurm_conf: Path) -> dict:
    arc = yaml.safe_load((ROOT / "hub_config" / "arc.yaml").read_text())
    [preset] = [c for c in arc["clusters"] if c["name"] == "local-slurm"]
    preset["transport"]["slurm_conf"] = str(slurm_conf)  # absolute: the ConfigMap has no ../.state
    return preset


def chart_values(*, hub_port: int, courses_port: int, gpu_port: int, token: str, password: str, folder: Path, slurm_conf: Path) -> dict:
    return {
        "jupyterhub": {
            "enabled": True,
            "hub": {
                "config": {
                    "JupyterHub": {"authenticator_class": "dummy"},
                    "DummyAuthenticator": {"password": password},
                    "Authenticator": {"allowed_users": ["student1", "instructor1"]},
                },
                "services": {"test-admin": {"apiToken": token}},
                "loadRoles": {"test-admin": {"services": ["test-admin"], "scopes": [
                    "admin:users", "admin:servers", "list:users", "read:users", "admin:groups", "tokens",
                    "list:services", "read:services", "access:services!service=scip-gpu"]}},
                # z2jh binds the hub to :8081 in its own pod; here the port must be free on the host.
                "extraConfig": {"zz-test-bind": f'c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"'},
            },
            # (z2jh's own culler: off by the chart's defaults, scip-gpu culls)
            "custom": {"scip": {"coursesService": {"port": courses_port}, "arc": {"cleanupPresets": ["local-slurm"]},
                                "gpuCulling": {"port": gpu_port}}},
        },
        "config": {
            "courses": {"courses": [{
                "id": COURSE, "title": "Kubernetes intro", "instructors": ["instructor1"],
                "students": {"users": ["student1"]}, "material": {"path": str(folder)},
                "profiles": ["cpu-small"], "start": "2026-01-01", "end": "2030-06-30",
            }]},
            "arc": {"clusters": [local_slurm_preset(slurm_conf)]},
        },
    }


@pytest.fixture(scope="module")
async def chart_hub(kube_api, slurm_cluster, tmp_path_factory):
    if not is_root():
        pytest.fail("the chart hub test needs root (mount namespaces for the hub and pod volumes)", pytrace=False)
    root = tmp_path_factory.mktemp("chart-hub")
    root.chmod(0o755)
    token, password = secrets.token_hex(32), secrets.token_hex(8)
    hub_port = free_port()
    folder = material()
    values = chart_values(hub_port=hub_port, courses_port=free_port(), gpu_port=free_port(), token=token, password=password,
                          folder=folder, slurm_conf=slurm_cluster.conf)
    with helm.Chart.load(chart_with_z2jh(root)) as chart:
        docs = manifests(chart.render(values, name="scip", namespace="jhub"))
    for doc in docs:
        kubernetes_validate.validate(doc, "1.32", strict=True)
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    namespace = f"chart-{uuid.uuid4().hex[:8]}"
    runner = PodRunner(root, objects)
    kube_api.kubelet.runner = runner
    hub = await asyncio.to_thread(
        start_chart_hub, root, objects, namespace=namespace, kubeconfig=kube_api.kubeconfig,
        hub_port=hub_port, token=token, password=password,
    )
    hub.gpu_port = values["jupyterhub"]["custom"]["scip"]["gpuCulling"]["port"]
    try:
        yield hub, runner, namespace, root
    finally:
        hub.stop()
        runner.close()
        kube_api.kubelet.runner = None
        shutil.rmtree(folder, ignore_errors=True)


def follow(hub, session: requests.Session, path: str, limit: int = 120) -> requests.Response:
    """Follow redirects like a browser on the hub's own pages, waiting on spawn-pending."""
    url = hub.url + path
    for _ in range(limit):
        r = session.get(url, allow_redirects=False, timeout=60, headers={"Sec-Fetch-Site": "same-origin"})
        if r.status_code in (301, 302, 303, 307):
            location = r.headers["Location"]
            url = hub.url + location if location.startswith("/") else location
            if "/lab/tree/" in urlparse(url).path:
                return r
            continue
        if r.status_code == 200 and "/hub/spawn-pending/" in url:
            time.sleep(1)
            continue
        return r
    pytest.fail(f"too many redirects from {path}:\n{hub.log_tail()}")


def queued(slurm_cluster, comment: str) -> list[str]:
    return slurm_cluster.job_ids(comment_contains=comment)


async def test_course_launch_link_through_the_chart_hub_end_to_end(chart_hub, kube_api, slurm_cluster):
    hub, runner, namespace, root = chart_hub
    # The chart's hub is wired like the embedded one: course groups loaded at start.
    group = hub.api("GET", f"/groups/course-{COURSE}-students")
    assert group.status_code == 200 and group.json()["users"] == ["student1"], hub.log_tail()

    session = await asyncio.to_thread(hub.login, "student1")
    last = await asyncio.to_thread(follow, hub, session, LAUNCH)
    assert last.status_code == 302, f"{last.status_code} {last.text[:500]}\n{hub.log_tail()}"
    assert last.headers["Location"] == f"/user/student1/lab/tree/courses/{COURSE}/{NOTEBOOK}"

    # A pod with the course profile, restricted, labelled, started by the fake kubelet's runtime.
    [pod] = kube_api.emulator.live_pods(namespace)
    labels = pod["metadata"]["labels"]
    assert labels["scip.ca/profile"] == "cpu-small" and labels["component"] == "singleuser-server"
    assert labels["scip.ca/course"] == COURSE and labels["scip.ca/user"] == "student1"
    assert pss_violations(pod) == []
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["SCIP_COURSES_FILE"] == "/usr/local/etc/scip/courses.yaml"
    assert not [v for v in pod["spec"]["volumes"] if "secret" in v]  # no shared credential
    assert [p["metadata"]["name"] for p in runner.started] == [pod["metadata"]["name"]]
    server = hub.api("GET", "/users/student1").json()["servers"][""]
    assert server["ready"] and server["user_options"] == {"profile": "cpu-small", "course": COURSE}

    # The material was synced into the person's home volume.
    home = root / "claims" / "claim-student1"
    assert (home / "courses" / COURSE / NOTEBOOK).is_file()

    # The student executes the notebook; their instructor sees it, reported by the student's own server.
    token = hub.api("POST", "/users/student1/tokens", json={"note": "progress test", "expires_in": 600})
    assert token.status_code == 201, token.text
    execute_notebook(hub.url, "student1", f"courses/{COURSE}/{NOTEBOOK}", {"Authorization": f"token {token.json()['token']}"})
    instructor = await asyncio.to_thread(hub.login, "instructor1")
    row = await asyncio.to_thread(wait_for_row, instructor, hub.url, COURSE, "student1",
                                  lambda r: r[NOTEBOOK] == "executed", hub.log_tail)
    assert row["server"] == "running" and row["progress_reported_at"] and row["material_version"] == row["current_version"]
    page = instructor.get(f"{hub.url}/services/scip-courses/course/{COURSE}", timeout=60)
    assert page.status_code == 200 and '<td class="executed">executed</td>' in page.text, page.text[-2000:]
    # The student's home page card shows the version their pod reported (the hub pod mounts no home).
    card = await asyncio.to_thread(home_course_card, session, hub.url, COURSE)
    assert card_version(card) == row["material_version"] and "up to date" in card, card
    stamp = re.search(r'<time datetime="([^"]+)">reported ', card)
    assert stamp and stamp.group(1) >= row["progress_reported_at"], card

    # A Slurm job of that server; stopping the server deletes the pod and cancels the job.
    comment = JobTags(user="student1", server="").comment()
    job = slurm_cluster.run("sbatch", "--parsable", f"--comment={comment}", "--job-name=k8s-chart-hub", "-o", "/dev/null",
                            "-D", "/tmp", "--time=00:05:00", "--hold", "--wrap", "sleep 300").strip()
    assert queued(slurm_cluster, comment) == [job]
    r = hub.api("DELETE", "/users/student1/server")
    assert r.status_code in (202, 204), r.text
    for _ in range(120):
        if not kube_api.emulator.live_pods(namespace) and not queued(slurm_cluster, comment):
            break
        await asyncio.sleep(1)
    assert kube_api.emulator.live_pods(namespace) == []
    assert queued(slurm_cluster, comment) == [], hub.log_tail()
    # The server is gone; its last report stays, with its time.
    after = await asyncio.to_thread(wait_for_row, instructor, hub.url, COURSE, "student1",
                                    lambda r: r["server"] == "stopped", hub.log_tail)
    assert after[NOTEBOOK] == "executed" and after["progress_reported_at"] >= row["progress_reported_at"]


async def test_chart_hub_runs_scip_gpu_culling_instead_of_z2jh_culler(chart_hub):
    hub, _runner, _namespace, _root = chart_hub
    r = hub.api("GET", "/services")
    assert r.status_code == 200, r.text
    services = r.json()
    assert "jupyterhub-idle-culler" not in services  # the chart turns z2jh's activity-only culler off
    gpu = services["scip-gpu"]
    assert gpu["url"] == f"http://127.0.0.1:{hub.gpu_port}"  # the hub pod's IP ($SCIP_POD_IP), the fixed port
    # The service runs and answers through the proxy (its admin status: no server judged yet, or the student's).
    for _ in range(60):
        status = requests.get(f"{hub.url}/services/scip-gpu/api/status", headers=hub.headers, timeout=30)
        if status.status_code == 200:
            break
        await asyncio.sleep(1)
    assert status.status_code == 200, f"{status.status_code} {status.text[:300]}\n{hub.log_tail()}"
    assert isinstance(status.json(), dict)
