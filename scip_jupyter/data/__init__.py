"""Configuration shipped with the package: the example catalog, ARC presets and quotas.

Found through the installed package (importlib.resources), never through the
source tree, so a wheel installed in a hub image has them too. In a checkout
they are the files of hub_config/ (the package holds links to them; a wheel
holds copies).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The files this package ships.
FILES = ("catalog.yaml", "arc.yaml", "allocations.yaml")


def path(name: str) -> Path:
    """The shipped file `name` (one of FILES), with links resolved.

    >>> path("arc.yaml").name
    'arc.yaml'
    """
    if name not in FILES:
        raise ValueError(f"{name!r} is not shipped with scip_jupyter; shipped files: {', '.join(FILES)}")
    return Path(str(resources.files(__name__) / name)).resolve()
