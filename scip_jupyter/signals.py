"""Stopping managed hub services cleanly, and at once.

JupyterHub stops a managed service with SIGINT, then SIGTERM after a timeout.
A process started from a background job of a script inherits SIGINT as
*ignored*, and Python then installs no KeyboardInterrupt handler: the service
would sit out the hub's whole interrupt timeout. Our services call
`stop_on_signals()` first, so both signals end them at once.

Where a stop's time went (`make run`, 2 busy cores, 4 services): JupyterHub's
`cleanup()` stops its services one after another, and each took 0.8-1.3 s:
the service's interpreter tearing itself down after the KeyboardInterrupt
(0.3 s idle, more when busy), rounded up by the hub's `wait_for_death`
exponential back-off (polls after up to 0.1, 0.2, 0.4, 0.8 s). So:

- `stop_on_signals()`: the first SIGINT/SIGTERM raises KeyboardInterrupt (the
  service's own `finally` and `except KeyboardInterrupt` still run), and once
  it returns the process leaves with `os._exit` after flushing its logs,
  skipping the interpreter's teardown.
- `end_with_hub()` (called by `stop_on_signals()` in a hub-managed service): a
  hub killed with SIGKILL (an OOM kill, `kill -9`) cannot stop its services,
  which run in sessions of their own; the kernel sends each SIGTERM when the
  hub dies (Linux `PR_SET_PDEATHSIG`), so the restarted hub's services never
  meet an orphaned copy holding their ports and ledgers.
- `stop_services_together()`: the hub signals every managed service at once
  when it stops and waits for them together, polling every 20 ms; JupyterHub's
  own one-by-one stop then finds each already gone.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import signal
import sys

#: Seconds the hub waits for all its services together before its own stop (SIGTERM, SIGKILL) takes over.
SERVICES_GRACE = 3.0
#: Seconds between checks while they stop.
POLL = 0.02

_stopping = {"by_signal": False}


def _interrupt(signum, _frame):
    _stopping["by_signal"] = True
    raise KeyboardInterrupt


def _leave_now() -> None:  # atexit: after the service's own clean-up, skip the interpreter's teardown
    if not _stopping["by_signal"]:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in the main thread, and the process then leave at once.

    A hub-managed service (JupyterHub sets JUPYTERHUB_SERVICE_NAME) also ends when its hub dies.
    """
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    atexit.unregister(_leave_now)
    atexit.register(_leave_now)
    if os.environ.get("JUPYTERHUB_SERVICE_NAME"):
        end_with_hub()


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_hub(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel for `sig` when the parent (the hub that started this service) dies.

    Returns False where that cannot be asked (not Linux). If the hub is already gone
    (re-parented to init), the signal is raised at once.
    """
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() == 1:  # the hub died before we asked
        os.kill(os.getpid(), sig)
    return True


async def signal_services_together(services, grace: float = SERVICES_GRACE, poll: float = POLL) -> list:
    """SIGINT every running managed service at once; wait (at most `grace` s) until all have ended.

    `services`: JupyterHub Service objects (`.managed`, `.spawner` with `pid` and `poll()`).
    Returns the services still running (JupyterHub's own stop escalates for those).
    """
    running = []
    for service in services:
        spawner = getattr(service, "spawner", None)
        if not getattr(service, "managed", False) or spawner is None or not getattr(spawner, "pid", 0):
            continue
        if await spawner.poll() is not None:
            continue
        try:
            os.kill(spawner.pid, signal.SIGINT)
        except ProcessLookupError:
            continue
        running.append(service)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while running and loop.time() < deadline:
        await asyncio.sleep(poll)
        running = [s for s in running if await s.spawner.poll() is None]  # poll() reaps the child
    return running


def stop_services_together() -> None:
    """Make the hub stop all its managed services at once when it shuts down (once per process)."""
    from jupyterhub.app import JupyterHub

    if getattr(JupyterHub, "_scip_services_together", False):
        return
    original = JupyterHub.cleanup

    async def cleanup(self):
        try:
            left = await signal_services_together(list(self._service_map.values()))
            if left:
                self.log.warning("Services still stopping after %ss: %s", SERVICES_GRACE, ", ".join(s.name for s in left))
        except Exception:  # JupyterHub's own stop follows in any case
            self.log.exception("Stopping the services together failed")
        return await original(self)

    JupyterHub.cleanup = cleanup
    JupyterHub._scip_services_together = True
