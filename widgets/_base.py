"""What every scip_widgets view shares: escaped HTML fallbacks, lazy ipywidgets,
named sub-widgets, running model coroutines, and a periodic refresh.

Views never call Slurm or Kubernetes: they call their model, which does.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, Awaitable, Callable

from jinja2 import DictLoader

from scip_jupyter.templating import environment

from . import templates

#: One jinja environment for the views, autoescaping every template (scip_jupyter.templating).
#: Not strict: a view leaves out values it has none of (an error, a message).
_ENV = environment(DictLoader(templates.TEMPLATES), strict=False)

#: Tasks started from widget callbacks: kept referenced until done (asyncio holds weak refs).
_TASKS: set[asyncio.Task] = set()


def render(template: str, **context: Any) -> str:
    """Render one of widgets/templates.py with autoescaping."""
    return _ENV.get_template(template).render(**context)


def run_soon(coro: Awaitable[Any]) -> Any:
    """Run a model coroutine from a widget callback.

    In a kernel (an event loop runs) it becomes a task and this returns the task;
    headless (no loop: unit tests, scripts) it runs to completion and returns its result.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    task = loop.create_task(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


class Parts(SimpleNamespace):
    """Named references to a view's sub-widgets (never looked up by position)."""


class Periodic:
    """Calls an async `tick` every `interval()` seconds on the running loop
    (a tornado PeriodicCallback, as distributed's cluster widget does).

    Started only where an event loop runs (a kernel); `stop()` ends it.
    """

    def __init__(self, tick: Callable[[], Awaitable[Any]], interval: Callable[[], float]):
        self.tick = tick
        self.interval = interval
        self._callback = None

    @property
    def running(self) -> bool:
        return self._callback is not None and self._callback.is_running()

    def start(self) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False  # headless: whoever owns the model refreshes it
        from tornado.ioloop import PeriodicCallback

        if self._callback is None:
            self._callback = PeriodicCallback(self._run, max(0.2, float(self.interval())) * 1000)
        self._callback.start()
        return True

    async def _run(self) -> None:
        try:
            await self.tick()
        except Exception:  # noqa: BLE001 - the model reports errors in its own trait; keep ticking
            pass

    def stop(self) -> None:
        if self._callback is not None:
            self._callback.stop()


class View:
    """Base of the views: ``widget()`` builds ipywidgets once (imported lazily);
    displaying the view shows the widget, with the HTML fallback alongside for
    front ends without widget support (nbconvert, GitHub, e-mail)."""

    _widget_cache: Any = None

    def widget(self):
        if self._widget_cache is None:
            self._widget_cache = self._build()
        return self._widget_cache

    def _build(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _repr_html_(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/html": self._repr_html_(), "text/plain": repr(self)}
        try:
            widget = self.widget()
        except ImportError:  # no ipywidgets here: the HTML fallback is the view
            return bundle
        shown = widget._repr_mimebundle_(include=include, exclude=exclude) or {}
        bundle.update(shown)
        bundle["text/plain"] = repr(self)
        return bundle

    def close(self) -> None:
        """Stop refreshing and close the ipywidgets (the model stays)."""
        if self._widget_cache is not None:
            self._widget_cache.close()
            self._widget_cache = None


def set_if_changed(widget: Any, name: str, value: Any) -> None:
    """Assign only real changes (each assignment is a message to the browser)."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)
