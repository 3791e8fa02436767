"""Wiring the home page and translated hub pages into a JupyterHub config (a hub_setup feature).

- `c.JupyterHub.template_paths` starts with templates/hub/: our translated copies
  of the hub's pages (page.html with a language switcher, login, spawn, ...)
  and scip_home.html, which extends page.html like every hub page. JupyterHub's
  own templates cannot be translated upstream (jupyterhub#1604), so we serve
  ours; everything else on them is the hub's.
- `HubTranslations` gives the hub's jinja environments `{% trans %}` and `_()`.
- Every hub request runs in the person's language: their choice (the
  `scip-lang` cookie set by the switcher) else Accept-Language. The hub gives
  no per-request hook, so `BaseHandler.prepare` is wrapped once (idempotent);
  tornado runs each request in its own task, so the language set there stays
  with that request (and the spawn it starts: validation messages, the form).
- The home page is the landing page: `c.JupyterHub.default_url`.
"""

from __future__ import annotations

import contextvars
import os
from pathlib import Path

from jinja2.ext import InternationalizationExtension
from jupyterhub.utils import url_path_join

from ..i18n import LANGUAGE_COOKIE, _, current, negotiate, ngettext, set_locale
from ..templating import TEMPLATES

HUB_TEMPLATES = TEMPLATES / "hub"
HOME_PATH = "scip/home"
#: Why the ARC clusters cannot be used on this hub (set by `scip-jupyter up` when it cannot start Slurm).
ARC_UNAVAILABLE_ENV = "SCIP_ARC_UNAVAILABLE"
_request_uri: contextvars.ContextVar[str] = contextvars.ContextVar("scip_request_uri", default="/")
_base_url: contextvars.ContextVar[str] = contextvars.ContextVar("scip_hub_base_url", default="/hub/")


def _language_links() -> list[dict]:
    from .handlers import language_links

    return language_links(_request_uri.get(), _base_url.get())


class HubTranslations(InternationalizationExtension):
    """jinja2's i18n extension with our catalog installed (named in jinja_environment_options)."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.install_gettext_callables(gettext=_, ngettext=ngettext, newstyle=True)
        environment.globals.update(scip_lang=current, scip_language_links=_language_links)


def install_request_language() -> None:
    """Make every hub handler set the request's language before it runs (once per process)."""
    from jupyterhub.handlers.base import BaseHandler

    if getattr(BaseHandler, "_scip_language", False):
        return
    original = BaseHandler.prepare

    async def prepare(self):
        set_locale(negotiate(self.request.headers.get("Accept-Language"), self.get_cookie(LANGUAGE_COOKIE)))
        _request_uri.set(self.request.uri or "/")
        _base_url.set(self.hub.base_url if getattr(self, "hub", None) else "/hub/")
        return await original(self)

    BaseHandler.prepare = prepare
    BaseHandler._scip_language = True


def home_url(handler) -> str:
    """The landing page (JupyterHub's default_url), under the hub's base URL."""
    return url_path_join(handler.hub.base_url, HOME_PATH)


def _configured(section, name: str, default):
    return section[name] if name in section else default


def configure_home(c, setup, wiring) -> None:
    """hub_setup feature: home page handlers, translated hub templates, request language, landing page."""
    from .handlers import CancelJobHandler, HomeHandler, LanguageHandler

    install_request_language()
    paths = [p for p in _configured(c.JupyterHub, "template_paths", []) if p != str(HUB_TEMPLATES)]
    c.JupyterHub.template_paths = [str(HUB_TEMPLATES), *paths]
    options = dict(_configured(c.JupyterHub, "jinja_environment_options", {}))
    extensions = list(options.get("extensions", []))
    name = f"{HubTranslations.__module__}.{HubTranslations.__name__}"
    if name not in extensions:
        extensions.append(name)
    options["extensions"] = extensions
    c.JupyterHub.jinja_environment_options = options
    settings = {
        "registry_file": setup.courses_path if setup.courses_path and Path(setup.courses_path).exists() else "",
        "catalog_path": setup.catalog_path,
        "allocations_path": setup.allocations_path,
        "ledger_url": setup.ledger_url,
        "homes": setup.homes,
        "presets": list(setup.arc_cleanup_presets),
        "arc_unavailable": os.environ.get(ARC_UNAVAILABLE_ENV, ""),
    }
    c.JupyterHub.extra_handlers = [
        *_configured(c.JupyterHub, "extra_handlers", []),
        (r"/scip/home/?", HomeHandler, settings),
        (r"/scip/jobs/([A-Za-z0-9_.-]+)/([0-9_\[\]%,-]+)/cancel", CancelJobHandler, settings),
        (r"/scip/language/([a-z]{2})", LanguageHandler),
    ]
    c.JupyterHub.default_url = home_url
    if settings["arc_unavailable"]:  # the kernels' ARC parts say why instead of waiting for workers
        c.Spawner.environment = {**_configured(c.Spawner, "environment", {}),
                                 ARC_UNAVAILABLE_ENV: settings["arc_unavailable"]}
