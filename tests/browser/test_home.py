"""Our hub pages in Debian Chromium, in English and French: the home page as the landing page,
the language switcher, the spawn form as cards, a Slurm job cancelled from the home page,
the instructor pages; each page checked with axe-core (no serious or critical violation)
and saved as a screenshot in test-artifacts/ (home-<page>-<lang>.png).

Uses the session hub (`scip-jupyter up`, tests/fixtures/hub.py) and the real local Slurm.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from scip_jupyter.arc.tags import JobTags
from scip_jupyter.i18n import LANGUAGE_COOKIE
from tests.fixtures.browser import save_screenshot
from tests.fixtures.common import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.slurm]

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ACCEPT = {"en": "en-CA,en;q=0.9", "fr": "fr-CA,fr;q=0.9,en;q=0.5"}
#: Words each page must show in each language (taken from the catalog's French).
HEADINGS = {
    "en": ["Your courses", "Your server", "Your allocation", "Your Slurm jobs"],
    "fr": ["Vos cours", "Votre serveur", "Votre allocation", "Vos tâches Slurm"],
}
SLURM_CONF = os.environ.get("SLURM_CONF") or str(ROOT / ".state" / "slurm" / "slurm.conf")


async def check_accessibility(page, name: str) -> None:
    """Inject axe-core into the page and fail on any serious or critical violation."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make setup` (npm installs axe-core from package.json)", pytrace=False)
    await page.add_script_tag(path=str(AXE))
    violations = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
               id: v.id, impact: v.impact, help: v.help,
               targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))"""
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: axe-core violations:\n" + "\n".join(
        f"  {v['impact']} {v['id']}: {v['help']} at {v['targets']}" for v in bad)


async def new_page(chromium, lang: str):
    context = await chromium.new_context(viewport={"width": 1300, "height": 1000},
                                         extra_http_headers={"Accept-Language": ACCEPT[lang]}, locale=lang)
    context.set_default_timeout(90_000)
    return context, await context.new_page()


async def login(page, hub, user: str) -> None:
    await page.goto(hub.url + "/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password)
    await page.click("#login_submit")
    await page.wait_for_url("**/hub/scip/home**")


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_student_lands_on_their_home_page_in_their_language(chromium, hub, artifacts_dir, lang):
    context, page = await new_page(chromium, lang)
    try:
        await page.goto(hub.url + "/hub/login")
        assert await page.get_attribute("html", "lang") == lang
        await check_accessibility(page, f"login ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-login-{lang}")

        await login(page, hub, "student1")  # the landing page after login is the home page
        assert await page.get_attribute("html", "lang") == lang
        body = await page.inner_text("#scip-home")
        for heading in HEADINGS[lang]:
            assert heading in body, body
        assert await page.locator("#scip-courses [data-course]").count() >= 1
        assert await page.locator("#scip-allocation [data-account]").count() >= 1
        assert await page.locator("#scip-allocation svg.scip-chart rect").count() >= 7
        assert await page.locator("#jupyterhub-logo").count() == 1  # the hub's own page.html around it
        await check_accessibility(page, f"home ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-student-{lang}")

        await page.goto(hub.url + "/hub/spawn/student1")
        cards = page.locator(".scip-card")
        assert await cards.count() >= 2
        assert await page.locator("input[name=profile]:checked").count() == 1
        await page.locator("input[name=profile]").first.focus()  # keyboard: the radios are reachable
        await page.keyboard.press("ArrowDown")
        assert await page.locator("input[name=profile]:checked").count() == 1
        await check_accessibility(page, f"spawn form ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-spawn-form-{lang}")

        await page.goto(hub.url + "/hub/home")  # the hub's servers page, our translated copy
        assert await page.get_attribute("html", "lang") == lang
        assert ("Démarrer mon serveur" if lang == "fr" else "Start My Server") in await page.inner_text("#start")
        await check_accessibility(page, f"servers ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-servers-{lang}")

        await page.goto(hub.url + "/user/student1/lab")  # the server is not running: the hub says so
        await page.wait_for_selector("#start")
        assert ("Serveur arrêté" if lang == "fr" else "Server not running") in await page.inner_text("h1")
        await check_accessibility(page, f"not running ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-not-running-{lang}")
    finally:
        await context.close()


async def test_language_switcher_choice_wins_over_the_browser(chromium, hub, artifacts_dir):
    context, page = await new_page(chromium, "en")
    try:
        await login(page, hub, "researcher1")
        assert "Your courses" in await page.inner_text("#scip-home")
        await page.click("#scip-language a[lang=fr]")
        await page.wait_for_url("**/hub/scip/home**")
        assert await page.get_attribute("html", "lang") == "fr"
        assert "Vos cours" in await page.inner_text("#scip-home")
        cookies = {c["name"]: c["value"] for c in await context.cookies()}
        assert cookies.get(LANGUAGE_COOKIE) == "fr"
        await page.reload()  # the browser still asks for English: the choice is kept
        assert await page.get_attribute("html", "lang") == "fr"
        await save_screenshot(page, artifacts_dir, "home-researcher-fr")
        await page.click("#scip-language a[lang=en]")
        await page.wait_for_url("**/hub/scip/home**")
        assert await page.get_attribute("html", "lang") == "en"
    finally:
        await context.close()


def _person_account(user: str) -> str:
    """The person's own Unix account (`jupyter-NAME`), with its Slurm association (accounting is
    enforced on the local Slurm), as the embedded hub's spawner makes it (spawners/local.py)."""
    if os.geteuid() != 0:
        pytest.fail("these tests submit jobs as the person's own account: run them as root (runuser)", pytrace=False)
    import pwd
    import tempfile

    from scip_jupyter.identity import system_username, useradd_argv

    account = system_username(user)
    try:
        pwd.getpwnam(account)
    except KeyError:  # not spawned yet: make it as the hub would (identity.ensure_account)
        made = subprocess.run(useradd_argv(account, f"/home/{account}", user), capture_output=True, text=True,
                              timeout=60)
        if made.returncode not in (0, 9):
            pytest.fail(f"useradd {account}: {made.stderr}", pytrace=False)
    env = {**os.environ, "SLURM_CONF": SLURM_CONF}
    out = subprocess.run(["sacctmgr", "-i", "add", "user", account, "Account=def-demo"],
                         capture_output=True, text=True, env=env, timeout=60, cwd=tempfile.gettempdir())
    if out.returncode != 0 and "Nothing new added" not in out.stdout + out.stderr:
        pytest.fail(f"sacctmgr add user {account}: {out.stderr or out.stdout}", pytrace=False)
    return account


def _submit_tagged_job(user: str, as_account: str | None = None) -> str:
    """A job tagged for `user`, submitted by Slurm account `as_account` (default: the person's own)."""
    env = {**os.environ, "SLURM_CONF": SLURM_CONF}
    account = as_account or _person_account(user)
    comment = JobTags(user=user, server="").comment()
    out = subprocess.run(
        ["runuser", "-u", account, "--", "sbatch", "--parsable", "--job-name", "home-page-test",
         f"--comment={comment}", "--time=10", "-D", "/tmp", "-o", "/dev/null", "--wrap", "sleep 600"],
        capture_output=True, text=True, env=env, timeout=60, cwd="/tmp",
    )
    if out.returncode != 0:
        pytest.fail(f"sbatch as {account} failed (is the local Slurm running? scripts/slurm-local start): "
                    f"{out.stderr}", pytrace=False)
    return out.stdout.strip().split(";")[0]


def _in_queue(job_id: str) -> str:
    env = {**os.environ, "SLURM_CONF": SLURM_CONF}
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, env=env, timeout=60)
    return out.stdout.strip()


@pytest.mark.parametrize("lang", ["fr"])
async def test_home_page_lists_and_cancels_the_persons_slurm_job(chromium, hub, artifacts_dir, lang):
    job_id = _submit_tagged_job("researcher1")
    context, page = await new_page(chromium, lang)
    try:
        await login(page, hub, "researcher1")
        row = page.locator(f"#scip-job-table tr[data-job='{job_id}']")
        deadline = time.monotonic() + 120
        while await row.count() == 0 and time.monotonic() < deadline:  # the hub caches squeue for 10 s
            await page.wait_for_timeout(2000)
            await page.reload()
        assert await row.count() == 1, await page.inner_text("#scip-jobs")
        await check_accessibility(page, f"home with a job ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-jobs-{lang}")
        await row.locator("button[type=submit]").click()
        await page.wait_for_url("**/hub/scip/home?notice=cancelled")
        deadline = time.monotonic() + 60
        while _in_queue(job_id) not in ("", "CANCELLED", "COMPLETING") and time.monotonic() < deadline:
            time.sleep(1)
        assert _in_queue(job_id) in ("", "CANCELLED", "COMPLETING")
    finally:
        subprocess.run(["scancel", job_id], env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=60)
        await context.close()


def _home_job_ids(session, hub) -> set[str]:
    import re

    r = session.get(f"{hub.url}/hub/scip/home", timeout=60)
    assert r.status_code == 200, r.text[:500]
    return set(re.findall(r"data-job=['\"]([^'\"]+)['\"]", r.text))


async def test_a_job_carrying_the_persons_tags_from_another_account_is_not_theirs(hub):
    """Tags are text anyone writes: instructor1's account forges researcher1's tags. The home page
    (owner = Slurm's account, jupyter-researcher1) neither lists it nor cancels it."""
    own = _submit_tagged_job("researcher1")
    forged = _submit_tagged_job("researcher1", as_account=_person_account("instructor1"))
    try:
        session = hub.login("researcher1")
        deadline = time.monotonic() + 120
        shown = _home_job_ids(session, hub)
        while own not in shown and time.monotonic() < deadline:  # the hub caches squeue for 10 s
            time.sleep(2)
            shown = _home_job_ids(session, hub)
        assert own in shown, shown  # the same listing, so the forged job was in it too
        assert forged not in shown, shown
        xsrf = session.cookies.get("_xsrf") or ""
        r = session.post(f"{hub.url}/hub/scip/jobs/local-slurm/{forged}/cancel", data={"_xsrf": xsrf},
                         allow_redirects=False, timeout=60)
        assert r.status_code == 403, r.text[:500]
        assert _in_queue(forged) not in ("", "CANCELLED")
    finally:
        subprocess.run(["scancel", own, forged], env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=60)


async def test_someone_elses_job_cannot_be_cancelled(hub):
    job_id = _submit_tagged_job("instructor1")
    try:
        session = hub.login("researcher1")
        xsrf = session.cookies.get("_xsrf") or ""
        r = session.post(f"{hub.url}/hub/scip/jobs/local-slurm/{job_id}/cancel", data={"_xsrf": xsrf},
                         allow_redirects=False, timeout=60)
        assert r.status_code == 403, r.text[:500]
        assert _in_queue(job_id) not in ("", "CANCELLED")
    finally:
        subprocess.run(["scancel", job_id], env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=60)


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_instructor_pages_are_hub_styled_with_progress_charts(chromium, hub, artifacts_dir, lang):
    context, page = await new_page(chromium, lang)
    try:
        await login(page, hub, "instructor1")
        link = page.locator("#scip-courses a[href*='services/scip-courses']")
        assert await link.count() == 1
        await link.click()
        await page.wait_for_url("**/services/scip-courses/**")
        assert await page.get_attribute("html", "lang") == lang
        await check_accessibility(page, f"instructor index ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-instructor-index-{lang}")
        await page.locator("table a[href*='course/']").first.click()
        await page.wait_for_selector("#progress-per-notebook")
        assert await page.locator("#progress-per-notebook li").count() >= 1
        assert await page.locator("#jupyterhub-logo").count() == 1
        await check_accessibility(page, f"instructor course ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-instructor-course-{lang}")
    finally:
        await context.close()


async def test_open_gpu_notices_show_on_the_home_page_translated_and_escaped(chromium, hub, artifacts_dir):
    """scip-gpu's open notices (idle GPU about to be stopped, allocation at 90%) for this person
    show on their home page in French; text from the ledger is escaped; cleared ones are gone."""
    import datetime as dt

    from scip_jupyter.culling.records import Records

    hostile = "group:<script>alert('notice')</script>"
    records = Records(hub.ledger_url)
    deadline = dt.datetime(2030, 1, 1, 9, 10)
    records.post("idle-warning", "researcher1", server="", account="group:researchers", deadline=deadline)
    records.post("budget-warning", "researcher1", account=hostile)
    records.post("budget-warning", "instructor1", account="group:not-yours")
    context, page = await new_page(chromium, "fr")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        await login(page, hub, "researcher1")
        notices = page.locator("#scip-gpu-notices [data-gpu-notice]")
        assert await notices.count() == 2, await page.inner_text("#scip-home")
        text = await page.inner_text("#scip-gpu-notices")
        assert "Le GPU de votre serveur" in text and "2030-01-01 09:10 UTC" in text, text
        assert "a utilisé 90 % de ses heures-GPU" in text and "<script>alert('notice')</script>" in text, text
        assert "not-yours" not in text
        assert await page.locator("#scip-gpu-notices script").count() == 0 and not dialogs
        await check_accessibility(page, "home with GPU notices (fr)")
        await save_screenshot(page, artifacts_dir, "home-gpu-notices-fr")
        records.clear(["idle-warning", "budget-warning"], user="researcher1")
        await page.reload()
        assert await page.locator("#scip-gpu-notices").count() == 0
    finally:
        records.clear(["idle-warning", "budget-warning"], user="researcher1")
        records.clear(["budget-warning"], user="instructor1")
        records.dispose()
        await context.close()
