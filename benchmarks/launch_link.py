"""A student's first launch, from following the link to an open notebook: ours vs stock JupyterHub + nbgitpuller.

Both hubs run on this machine, in Debian Chromium (Playwright, never a downloaded browser):

* ours: `scip-jupyter up` (the embedded platform) with a course whose material is a
  local git repository; the link is the course launch link
  `/hub/scip/course/<id>/launch?notebook=lesson.ipynb`.
* stock: a plain JupyterHub (same configurable-http-proxy, shared-password login,
  LocalProcessSpawner, JupyterLab) and nbgitpuller (PyPI) pulling the same repository:
  `/hub/user-redirect/git-pull?repo=<repo>&branch=main&urlpath=lab/tree/<repo>/lesson.ipynb`.

Each round is a fresh person (a new hub user and a new Unix account: the stock spawner
runs servers as the account of that name, made here; ours makes `jupyter-<name>` itself
on the first spawn; both removed at the end), who follows the link, signs
in on the login page it leads to, and waits until the notebook is open in JupyterLab
(its first cell shown). Rounds alternate which hub goes first. Per phase (from the
URLs the browser passes through) the medians show where the time goes:

    link_to_login   following the link until the login form shows
    login_to_spawn  signing in until the server is requested (spawn / pending page)
    spawn_to_server pending page until the single-user server answers (spawn, as the account)
    server_to_open  the server's first page until the notebook is open (sync/pull, JupyterLab)

Ends with:  launch_ours=<median s> launch_stock=<median s> launch_ratio=<ours/stock>

Run as root (creates accounts `lbench-<n>`, removed at the end):
    .venv/bin/python benchmarks/launch_link.py [rounds]
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import nbformat
import requests
from scip_jupyter.embedded import free_port  # noqa: E402  (one place picks a free local port)

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
COURSE = "launch-bench"
PASSWORD = "bench-" + secrets.token_hex(8)
#: The repository belongs to root; both hubs' servers (other accounts) may read it (git's ownership check).
GIT_ENV = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*"}


def trust_repo(repo: Path, add: bool) -> None:
    """git refuses a repository another account owns: mark this one safe for the run (system config)."""
    for path in (str(repo), str(repo / ".git")):
        args = ["--add", "safe.directory", path] if add else ["--fixed-value", "--unset-all", "safe.directory", path]
        subprocess.run(["git", "config", "--system", *args], check=False)
PHASES = ("link_to_login", "login_to_spawn", "spawn_to_server", "server_to_open")

OURS_CONFIG = """\
load_subconfig({local!r})
c.Authenticator.allowed_users = set(c.Authenticator.allowed_users) | {users!r}
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Spawner.environment = {{**c.Spawner.environment, **{git_env!r}}}
"""
STOCK_CONFIG = """\
# Stock JupyterHub: nothing of SCIP Jupyter, only what a small site would write.
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.cleanup_servers = True
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {password!r}
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {{"PATH": "{bin}:/usr/local/bin:/usr/bin:/bin", **{git_env!r}}}
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
"""


def make_repo(folder: Path) -> Path:
    """A course repository with one notebook, readable by every account."""
    repo = folder / "lesson-repo"
    repo.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Lesson one\n\nOpened from a launch link."),
                nbformat.v4.new_code_cell("print('hello')")]
    nbformat.write(nb, repo / "lesson.ipynb")
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@x"}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "lesson"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=env)
    for p in [folder, *folder.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return repo


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"hub exited ({proc.returncode}): see {log}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    sys.exit(f"hub did not answer on {url}: see {log}")


def start_ours(state: Path, repo: Path, users: list[str]) -> tuple[subprocess.Popen, str]:
    registry = state / "courses.yaml"
    registry.write_text(
        f"courses:\n  - id: {COURSE}\n    title: Launch benchmark\n    instructors: [instructor1]\n"
        f"    students:\n      users: [{', '.join(users)}]\n    material:\n      git: {repo}\n      ref: main\n"
        f"    profiles: [cpu-small]\n    start: 2026-01-01\n    end: 2099-12-31\n"
    )
    config = state / "bench_config.py"
    config.write_text(OURS_CONFIG.format(local=str(ROOT / "hub_config" / "local.py"), users=set(users), password=PASSWORD,
                                         git_env=GIT_ENV))
    for p in (state, registry, config):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    port = free_port()
    log = state / "ours.log"
    proc = subprocess.Popen(
        [str(BIN / "scip-jupyter"), "up", "--port", str(port), "--state-dir", str(state / "hub"),
         "--config", str(config), "--slurm", "off"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, **GIT_ENV, "SCIP_COURSES_FILE": str(registry), "SCIP_COURSE_CACHE": str(state / "cache")},
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/hub/api/", proc, log)
    return proc, url


def start_stock(state: Path, users: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = state / "stock_config.py"
    config.write_text(STOCK_CONFIG.format(
        port=port, hub_port=free_port(), proxy_api=free_port(), state=state, password=PASSWORD, users=set(users),
        proxy=str(ROOT / "node_modules" / ".bin" / "configurable-http-proxy"),
        singleuser=str(BIN / "jupyterhub-singleuser"), bin=str(BIN), git_env=GIT_ENV,
    ))
    log = state / "stock.log"
    proc = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(config)], cwd=state, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16)})
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/hub/api/", proc, log)
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def add_account(name: str) -> None:
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)


def remove_account(name: str) -> None:
    subprocess.run(["userdel", "-r", name], check=False, stderr=subprocess.DEVNULL)


async def one_launch(browser, link: str, user: str, lab_host: str) -> dict[str, float]:
    """Follow `link` as a fresh person: sign in, wait for the open notebook. Phase durations in s."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    context.set_default_timeout(240_000)
    page = await context.new_page()
    marks: dict[str, float] = {}

    def seen(frame):
        if frame != page.main_frame:
            return
        url, now = frame.url, time.monotonic()
        if ("/spawn" in url or "/spawn-pending" in url) and "spawn" not in marks:
            marks["spawn"] = now
        if "/user/" in url and "server" not in marks:
            marks["server"] = now

    page.on("framenavigated", seen)
    try:
        start = time.monotonic()
        await page.goto(link)
        await page.wait_for_selector("#username_input")
        marks["login"] = time.monotonic()
        await page.fill("#username_input", user)
        await page.fill("#password_input", PASSWORD)
        await page.click("#login_submit")
        await page.wait_for_selector(".jp-NotebookPanel .jp-Cell .jp-InputArea", state="visible")
        done = time.monotonic()
        spawn = marks.get("spawn", marks["login"])
        server = marks.get("server", spawn)
        return {"total": done - start, "link_to_login": marks["login"] - start,
                "login_to_spawn": spawn - marks["login"], "spawn_to_server": server - spawn,
                "server_to_open": done - server}
    finally:
        await context.close()


async def run(rounds: int) -> None:
    from playwright.async_api import async_playwright

    work = Path(tempfile.mkdtemp(prefix="launch-bench-", dir=str(ROOT / ".state")))
    os.chmod(work, 0o755)
    repo = make_repo(work / "material")
    trust_repo(repo, True)
    run = secrets.token_hex(2)
    ours_users = [f"lbench-o{run}-{i}" for i in range(rounds)]  # the hub makes jupyter-<name> on first spawn
    stock_users = [f"lbench-{secrets.token_hex(2)}-{i}" for i in range(rounds)]
    for name in stock_users:
        add_account(name)
    (work / "ours").mkdir()
    (work / "stock").mkdir()
    os.chmod(work / "ours", 0o755)
    ours_proc, ours_url = start_ours(work / "ours", repo, ours_users)
    stock_proc, stock_url = start_stock(work / "stock", stock_users)
    results: dict[str, list[dict[str, float]]] = {"ours": [], "stock": []}
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            for i in range(rounds):
                ours_link = f"{ours_url}/hub/scip/course/{COURSE}/launch?notebook=lesson.ipynb"
                stock_link = (f"{stock_url}/hub/user-redirect/git-pull?repo={quote(str(repo), safe='')}&branch=main"
                              f"&urlpath={quote(f'lab/tree/{repo.name}/lesson.ipynb', safe='')}")
                order = [("ours", ours_link, ours_users[i]), ("stock", stock_link, stock_users[i])]
                for name, link, user in order if i % 2 == 0 else order[::-1]:
                    r = await one_launch(browser, link, user, "")
                    results[name].append(r)
                    print(f"round {i + 1} {name}: {r['total']:.2f} s  " +
                          "  ".join(f"{p}={r[p]:.2f}" for p in PHASES), flush=True)
            await browser.close()
    finally:
        stop(ours_proc)
        stop(stock_proc)
        for name in stock_users:
            remove_account(name)
        for name in ours_users:  # the accounts our spawner created for them (the hub ran as root)
            if subprocess.run(["id", f"jupyter-{name}"], capture_output=True).returncode == 0:
                remove_account(f"jupyter-{name}")
        trust_repo(repo, False)
    for name in ("ours", "stock"):
        print(f"{name} medians: " + "  ".join(
            f"{p}={statistics.median(r[p] for r in results[name]):.2f}" for p in PHASES), flush=True)
    ours = statistics.median(r["total"] for r in results["ours"])
    stock = statistics.median(r["total"] for r in results["stock"])
    print(f"logs: {work}/ours/ours.log {work}/stock/stock.log")
    print(f"launch_ours={ours:.2f} launch_stock={stock:.2f} launch_ratio={ours / stock:.2f}")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("launch_link: run as root (the stock hub's spawner needs one Unix account per person)")
    if shutil.which("git") is None:
        sys.exit("launch_link: git is missing")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    asyncio.run(run(rounds))


if __name__ == "__main__":
    main()
