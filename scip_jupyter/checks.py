"""`scip-jupyter check DIR`: validate every config file in a folder.

One table maps a file name to the loader that validates it; each loader raises
`config.ConfigError` whose problems are `file:line: field: problem` lines.
"""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError, ConfigProblem
from .i18n import _
from .lazy import load

#: file name -> "module:function" loading and validating it (raises ConfigError).
LOADERS = {
    "catalog.yaml": "scip_jupyter.catalog:load_catalog",
    "courses.yaml": "scip_jupyter.courses.registry:load_courses",
    "arc.yaml": "scip_jupyter.arc.presets:load_presets",
    "allocations.yaml": "scip_jupyter.allocations.quotas:load_allocations",
}


def check_dir(folder: str | Path) -> tuple[list[str], list[ConfigProblem]]:
    """Validate the known config files in `folder`; returns (files checked, problems)."""
    folder = Path(folder)
    if not folder.is_dir():
        return [], [ConfigProblem(str(folder), 1, "(folder)", _("is not a folder"))]
    checked, problems = [], []
    for name, spec in LOADERS.items():
        path = folder / name
        if not path.exists():
            continue
        checked.append(str(path))
        try:
            loader = load(spec)
        except (ImportError, AttributeError) as exc:  # a module not built yet is a problem, not a crash
            problems.append(ConfigProblem(str(path), 1, "(loader)", _("cannot load validator {spec}: {error}").format(spec=spec, error=exc)))
            continue
        try:
            loader(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if not checked:
        problems.append(
            ConfigProblem(str(folder), 1, "(folder)", _("holds none of {names}").format(names=", ".join(LOADERS)))
        )
    return checked, problems
