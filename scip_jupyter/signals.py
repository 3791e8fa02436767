"""Stopping managed hub services cleanly.

JupyterHub stops a managed service with SIGINT, then SIGTERM after a timeout.
A process started from a background job of a script inherits SIGINT as
*ignored*, and Python then installs no KeyboardInterrupt handler: the service
would sit out the hub's whole interrupt timeout. Our services call
`stop_on_signals()` first, so both signals end them at once.
"""

from __future__ import annotations

import signal


def stop_on_signals() -> None:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt in the main thread."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
