"""Tables that name code by string, imported only when used.

The command verbs (cli.VERBS), the ARC sub-commands (arc.cli.SUBCOMMANDS), the
config validators (checks.LOADERS) and scip_widgets' public names each map a
name to "package.module" or "package.module:attribute", so a command imports
only what it runs, and a module that cannot be imported is reported by the
table's user rather than crashing at start-up.
"""

from __future__ import annotations

import importlib
from typing import Any


def load(spec: str) -> Any:
    """The module `spec` names ("package.module"), or its attribute ("package.module:name").

    Raises ImportError or AttributeError when there is no such thing.

    >>> load("os.path:join").__name__, load("os.path").__name__
    ('join', 'posixpath')
    """
    module, _, name = spec.partition(":")
    found = importlib.import_module(module)
    return getattr(found, name) if name else found
