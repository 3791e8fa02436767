"""English and French: every message has a French translation, and French pages show no English message id.

The message ids come from the source itself (Babel's extractors over scip_jupyter/
and widgets/: Python `_()`/`ngettext()`/`N_()`, jinja `{% trans %}` and `_()`,
the widgets' template strings), so a new message without a translation in
`scip_jupyter/locale/fr/LC_MESSAGES/*.po` fails here, naming its file and line.
Then every page we render (spawn form, home page, the hub pages we template,
instructor pages, widget fallbacks) is rendered in French and must not contain
an English message id.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
from babel.messages.pofile import read_po

from scip_jupyter.i18n import LOCALE_DIR, load_catalog, use_locale
from tests.i18n_messages import ROOT, source_messages

FRENCH = LOCALE_DIR / "fr" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdfr]|\{(\w*)\}")


@pytest.fixture(scope="module")
def messages():
    found = source_messages()
    assert len(found) > 100, "the extractor found almost nothing: is Babel's jinja extractor working?"
    return found


@pytest.fixture(scope="module")
def french():
    return load_catalog("fr")


def _string(message) -> list[str]:
    return [s for s in (message.string if isinstance(message.string, (tuple, list)) else (message.string,))]


def test_every_message_has_a_french_translation(messages, french):
    missing = defaultdict(list)
    for m in messages:
        entry = french.get(m.id)
        if entry is None or not all(_string(entry)) or not _string(entry):
            missing[m.id].append(m.where)
    report = "\n".join(f"  {where[0]}: {msgid!r}" + (f" (+{len(where) - 1} more)" if len(where) > 1 else "")
                       for msgid, where in sorted(missing.items(), key=lambda kv: kv[1][0]))
    assert not missing, f"{len(missing)} message(s) without a French translation in {FRENCH}/*.po:\n{report}"


def test_translations_keep_the_placeholders(french):
    wrong = []
    for message in french:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, (tuple, list)) else (message.id,)
        want = {a or b for a, b in PLACEHOLDER.findall(ids[-1])}
        for text in _string(message):
            if text and {a or b for a, b in PLACEHOLDER.findall(text)} != want:
                wrong.append(f"{ids[0]!r} -> {text!r}")
    assert not wrong, "translations whose placeholders differ from the message id:\n" + "\n".join(wrong)


def test_a_message_in_two_files_has_one_translation():
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for po in sorted(FRENCH.glob("*.po")):
        with po.open("rb") as f:
            for message in read_po(f, locale="fr"):
                if not message.id:
                    continue
                key = message.id if isinstance(message.id, str) else message.id[0]
                text = str(message.string)
                if key in seen and seen[key][1] != text and message.string:
                    clashes.append(f"{key!r}: {seen[key][0]} says {seen[key][1]!r}, {po.name} says {text!r}")
                seen.setdefault(key, (po.name, text))
    assert not clashes, "\n".join(clashes)


def test_plural_forms_are_french():
    with use_locale("fr"):
        from scip_jupyter.i18n import ngettext

        assert ngettext("%(n)s core", "%(n)s cores", 1) % {"n": 1} == "1 cœur"
        assert ngettext("%(n)s core", "%(n)s cores", 2) % {"n": 2} == "2 cœurs"


# --- every page in French ---------------------------------------------------------------------------


def english_ids(messages, french) -> set[str]:
    """Message ids that a French page must not show: several words, no placeholder, translated differently."""
    out = set()
    for m in messages:
        entry = french.get(m.id)
        text = _string(entry)[0] if entry is not None and _string(entry) else ""
        if " " in m.id.strip() and not PLACEHOLDER.search(m.id) and "<" not in m.id and text and text != m.id:
            out.add(m.id)
    return out


def hub_environment() -> jinja2.Environment:
    """The hub's template environment as JupyterHub builds it, with our templates/hub first."""
    import jupyterhub

    from scip_jupyter.home.hub import HUB_TEMPLATES

    share = Path(jupyterhub.__file__).resolve().parents[0]
    candidates = [Path(p) for p in (ROOT / ".venv" / "share" / "jupyterhub" / "templates",
                                    share.parent.parent.parent.parent / "share" / "jupyterhub" / "templates")]
    base = next(p for p in candidates if (p / "page.html").exists())
    loader = jinja2.ChoiceLoader([
        jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader([str(base)])}, "/"),
        jinja2.FileSystemLoader([str(HUB_TEMPLATES), str(base)]),
    ])
    return jinja2.Environment(loader=loader, autoescape=True,
                              extensions=["scip_jupyter.home.hub.HubTranslations"])


def hub_namespace(**extra) -> dict:
    user = SimpleNamespace(name="ana", json_escaped_name="ana", url="/user/ana/", admin=False,
                           spawner=SimpleNamespace(options_form=True))
    return {
        "base_url": "/hub/", "prefix": "/", "user": user, "login_url": "/hub/login", "logout_url": "/hub/logout",
        "static_url": lambda path, **_k: "/hub/static/" + path, "version_hash": "", "services": [],
        "parsed_scopes": set(), "xsrf": "x", "xsrf_token": "x", "login_service": "", "authenticator_login_url": "/hub/login",
        "authenticator": SimpleNamespace(request_otp=False), **extra,
    }


def home_context() -> dict:
    from scip_jupyter.home import model

    now = dt.datetime(2026, 12, 1, 12)
    return {
        "courses": [model.CourseCard("intro", "Intro", "active", "/hub/scip/course/intro/launch", "v2", "v1", True)],
        "courses_error": "", "server": model.ServerCard("running", "CPU", "cpu-small", "5 min", "0 GPU-hours", "/user/ana/"),
        "allocations": [model.AllocationCard("group:r", "group r", "Demo", model.window_label("this month"),
                                             [model.Slot("h100", 1, 2)], 500.0, 20.0, 5.0)],
        "chart": model.chart_bars([(now.date(), 2.0)]), "allocation_error": "",
        "jobs": model.JobsSection([model.JobRow("local-slurm", "42", "42", "w", "pending", "PENDING", "Priority",
                                                "2026-12-01 13:00 UTC", "", True)], {"other": "down"}),
        "words": model.state_words(), "spawn_url": "/hub/spawn/ana", "cancel_base": "/hub/scip/jobs",
        "instructor_url": "/services/scip-courses/", "notice": True,
        "gpu_notices": ["Votre allocation x a utilisé 90 % de ses heures-GPU."],
    }


def spawn_form_page() -> str:
    from scip_jupyter.catalog import load_catalog as load_profiles
    from scip_jupyter.options import ProfileStatus, render_spawn_form

    catalog = load_profiles(ROOT / "hub_config" / "catalog.yaml")
    status = {"mig-1g-10gb": ProfileStatus(free=3, allocation="x: 4 of 4 left"),
              "h100-full": ProfileStatus(free=0, allocation="used up", allocation_ok=False)}
    return render_spawn_form(catalog.profiles_for(["researchers"]), status=status) + render_spawn_form([])


def instructor_pages() -> str:
    from scip_jupyter.courses.view import Row, render_course, render_index

    course = SimpleNamespace(id="intro", title="Intro", start="2026-09-01", end="2026-12-20", profiles=["cpu-small"])
    rows = [Row("ana", "running", "", "v1", "yes", 1, ["executed", "not opened"]),
            Row("bo", "never logged in", "", "never synced", "no", 0, ["opened", "not opened"])]
    index = render_index([{"id": "intro", "title": "Intro", "state": "active", "start": "a", "end": "b",
                           "students": "ana"}], "ana", "/services/scip-courses/")
    view = render_course(course, "active", "v2", ["a.ipynb", "b.ipynb"], rows, [("course", "http://x/launch")],
                         "/services/scip-courses/", user="ana")
    empty = render_index([], "ana", "/p/") + render_course(course, "ended", "v2", [], [], [], "/p/")
    return index + view + empty


def widget_pages() -> str:
    from scip_widgets._base import render

    s = SimpleNamespace(name="c", preset="local-slurm", state="running", workers_requested=2, workers_pending=1,
                        workers_running=1, workers_connected=1, scheduler_address="", dashboard_link="", message="")
    m = SimpleNamespace(title="Intro", course="intro", version="v1", current_version="v2", update_available=True,
                        pending_text="", edited=[], message="", error="")
    return "".join([
        render("cluster_status.html", s=s, dashboard_href=""), render("status_title.html", s=s),
        render("job_table.html", headers=["Job"], rows=[], error=""), render("link.html", href="", text=""),
        render("launcher.html", phase="idle", fields=[], message=""), render("course_panel.html", m=m),
        render("course_title.html", t="Intro", c="intro"),
    ])


def hub_pages() -> str:
    env = hub_environment()
    pages = []
    for name, extra in (
        ("scip_home.html", home_context()),
        ("login.html", {"user": None}),
        ("spawn.html", {"spawner_options_form": "", "url": "/hub/spawn", "for_user": None, "error_message": "x"}),
        ("spawn_pending.html", {"progress_url": "/p"}),
    ):
        pages.append(env.get_template(name).render(**{**hub_namespace(), **extra}))
    return "".join(pages)


PAGES = {"spawn form": spawn_form_page, "hub pages": hub_pages, "instructor pages": instructor_pages,
         "widgets": widget_pages}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_french_pages_show_no_english_message_id(name, messages, french):
    with use_locale("fr"):
        page = html.unescape(PAGES[name]())
    shown = sorted(m for m in english_ids(messages, french) if m in page)
    assert not shown, f"French {name} show English text: {shown}"
    assert "lang=\"fr\"" in page or name in ("spawn form", "widgets")


@pytest.mark.parametrize("name", sorted(PAGES))
def test_pages_render_in_english_too(name):
    with use_locale("en"):
        page = PAGES[name]()
    assert page.strip()
    if name in ("hub pages", "instructor pages"):
        assert 'lang="en"' in page


# --- catalog data: the profiles' own texts -------------------------------------------------------------


CATALOGS = [ROOT / "hub_config" / "catalog.yaml", ROOT / "scip_jupyter" / "data" / "catalog.yaml"]


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_catalog_profile_has_french_texts(path):
    from scip_jupyter.catalog import load_catalog as load_profiles

    profiles = load_profiles(path).profiles
    missing = [f"{p.slug}: display_name_fr" for p in profiles if not p.display_name_fr]
    missing += [f"{p.slug}: description_fr" for p in profiles if p.description and not p.description_fr]
    assert not missing, f"{path}: profiles without French texts: {missing}"


def test_french_spawn_form_shows_no_english_catalog_text():
    from scip_jupyter.catalog import load_catalog as load_profiles

    profiles = load_profiles(CATALOGS[0]).profiles
    with use_locale("fr"):
        page = html.unescape(spawn_form_page())
    english = [t for p in profiles for t in (p.display_name, p.description)
               if t and t not in (p.display_name_fr, p.description_fr)]
    shown = [t for t in english if t in page]
    assert not shown, f"French spawn form shows the catalog's English: {shown}"
    assert all(p.display_name_fr in page for p in profiles if "researchers" in p.allowed_groups)


def test_allocation_texts_on_the_form_are_french():
    from scip_jupyter.allocations.policy import Account, Request, standing

    account = Account("group:r", "group r", "allocations.yaml", (dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1)),
                      "this month", {"h100": 1}, 10)
    request = Request(user="ana", server="", profile="h100-full", flavour="h100", units=1, gpu_weight=1.0)
    now = dt.datetime(2026, 12, 2)
    with use_locale("fr"):
        unmetered = standing(request, [], [], now)
        open_ = standing(request, [account], [], now)
    assert unmetered.text == "non comptabilisé"
    assert "groupe r" in open_.text and "heures-GPU restantes" in open_.text and "ce mois-ci" in open_.text, open_.text
