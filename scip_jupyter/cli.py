"""The `scip-jupyter` command.

Verbs live with what they drive; this module only routes. Each verb module
exposes `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import sys

from .lazy import load

#: verb -> (module, one-line help)
VERBS = {
    "up": ("scip_jupyter.embedded", "start the embedded platform (JupyterHub + proxy on 127.0.0.1)"),
    "check": ("scip_jupyter.cli_check", "validate catalog.yaml, courses.yaml and arc.yaml in a folder"),
    "course": ("scip_jupyter.courses.cli", "course material: links, sync, reset, status"),
    "arc": ("scip_jupyter.arc.cli", "ARC Slurm jobs of notebook servers: list, cancel, reconcile"),
    "gpu": ("scip_jupyter.culling.cli", "GPU culling: reclaimed GPU-hours per group and course, each cull"),
    "usage": ("scip_jupyter.allocations.usage_cli", "GPU-hours of servers and Slurm jobs: table, CSV, chart"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scip-jupyter", description="SCIP Jupyter platform command.")
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb, (module, help_) in VERBS.items():
        p = sub.add_parser(verb, help=help_, description=help_)
        p.set_defaults(_module=module)
        try:
            load(module).add_arguments(p)
        except ImportError as exc:
            p.set_defaults(_import_error=str(exc))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_import_error", None):
        print(f"scip-jupyter {args.verb}: unavailable ({args._import_error})", file=sys.stderr)
        return 2
    return int(load(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
