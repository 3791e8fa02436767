"""Jupyter server extension `scip_jupyter.server`, enabled in single-user servers.

Each feature keeps its handlers in its own module, listed in FEATURES; a module
exposes `handlers(serverapp) -> list[(pattern, handler, kwargs)]` (patterns are
relative to `/scip/api/`) and may expose `async start(serverapp)`, run once the
server's event loop runs (e.g. the course progress report), and
`async shutdown(serverapp)`, run when the server stops (e.g. cancelling the
server's Slurm jobs).

The extension is an `ExtensionApp` because jupyter_server (2.x) awaits
`ExtensionApp.stop_extension()` during its shutdown (`ServerApp._cleanup` ->
`cleanup_extensions`, before the kernels are shut down), while a plain module
extension has no shutdown hook at all (a module-level `_stop_extension` is never
called). tests/integration/test_arc_orphans.py checks that the hooks run on SIGTERM.
"""

from __future__ import annotations

import asyncio
import importlib
import logging

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Float

FEATURES = (
    "scip_jupyter.server.arc_handlers",
    "scip_jupyter.server.course_handlers",
)


def _jupyter_server_extension_points():
    return [{"module": "scip_jupyter.server", "app": SCIPServerExtension}]


def _features():
    for name in FEATURES:
        try:
            yield importlib.import_module(name)
        except ImportError as exc:  # a feature module that is not present is simply not served
            if exc.name != name:  # ...but a present one that fails to import is a bug: say so
                logging.getLogger(__name__).error("scip_jupyter.server: feature %s not served: %s", name, exc)
            continue


class SCIPServerExtension(ExtensionApp):
    """Routes FEATURES' handlers under /scip/api/ and runs their shutdown hooks."""

    name = "scip"
    load_other_extensions = True

    shutdown_timeout = Float(
        20.0,
        config=True,
        help="""Seconds every feature's shutdown hook may take in total (e.g. cancelling
        Slurm jobs) before the server goes on stopping. JupyterHub's local spawner
        kills a server that has not stopped 5 s after SIGTERM; the hub-side hooks
        (scip_jupyter.arc.hub_hooks) catch what that leaves.
        Example: c.SCIPServerExtension.shutdown_timeout = 10""",
    )

    def initialize_handlers(self):
        self.shutdown_hooks, self.start_hooks = [], []
        for module in _features():
            for pattern, handler, kwargs in module.handlers(self.serverapp):
                self.handlers.append((url_path_join("scip", "api", pattern), handler, kwargs))
            hook = getattr(module, "shutdown", None)
            if hook is not None:
                self.shutdown_hooks.append(hook)
            if getattr(module, "start", None) is not None:
                self.start_hooks.append(module.start)
        self.log.info("scip_jupyter.server: %d API routes under /scip/api/", len(self.handlers))

    async def _start_jupyter_server_extension(self, serverapp):
        # jupyter_server calls this once its event loop runs
        await self._run_hooks(getattr(self, "start_hooks", []))

    async def stop_extension(self):
        hooks = getattr(self, "shutdown_hooks", [])
        if not hooks:
            return
        try:
            await asyncio.wait_for(self._run_hooks(hooks), self.shutdown_timeout)
        except asyncio.TimeoutError:
            self.log.error("scip_jupyter.server: shutdown hooks did not finish within %.0fs", self.shutdown_timeout)

    async def _run_hooks(self, hooks):
        for hook in hooks:
            try:
                await hook(self.serverapp)
            except Exception:  # one failing hook must not stop the others
                self.log.exception("scip_jupyter.server: hook %s failed", hook)
