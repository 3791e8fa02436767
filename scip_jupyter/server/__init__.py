"""Jupyter server extension `scip_jupyter.server`, enabled in single-user servers.

Each feature keeps its handlers in its own module, listed in FEATURES; a module
exposes `handlers(serverapp) -> list[(pattern, handler, kwargs)]` (patterns are
relative to `/scip/api/`) and may expose `async shutdown(serverapp)`, run when
the server stops (e.g. cancelling the server's Slurm jobs).
"""

from __future__ import annotations

import importlib

from jupyter_server.utils import url_path_join

FEATURES = (
    "scip_jupyter.server.arc_handlers",
    "scip_jupyter.server.course_handlers",
)


def _jupyter_server_extension_points():
    return [{"module": "scip_jupyter.server"}]


def _features():
    for name in FEATURES:
        try:
            yield importlib.import_module(name)
        except ImportError:  # a feature module that is not present is simply not served
            continue


def _load_jupyter_server_extension(serverapp):
    base = url_path_join(serverapp.web_app.settings["base_url"], "scip", "api")
    routes = []
    for module in _features():
        for pattern, handler, kwargs in module.handlers(serverapp):
            routes.append((url_path_join(base, pattern), handler, kwargs))
        hook = getattr(module, "shutdown", None)
        if hook is not None:
            _register_shutdown(serverapp, hook)
    serverapp.web_app.add_handlers(".*$", routes)
    serverapp.log.info("scip_jupyter.server: %d API routes under %s", len(routes), base)


def _register_shutdown(serverapp, hook):
    # jupyter_server awaits extension `_stop_extension` hooks on shutdown; we chain ours.
    hooks = serverapp.web_app.settings.setdefault("scip_shutdown_hooks", [])
    hooks.append(hook)


async def _stop_extension(serverapp):
    for hook in serverapp.web_app.settings.get("scip_shutdown_hooks", []):
        try:
            await hook(serverapp)
        except Exception:  # one failing hook must not stop the others
            serverapp.log.exception("scip_jupyter.server: shutdown hook %s failed", hook)
