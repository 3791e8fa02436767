"""`scip-jupyter arc ...`: ARC presets and the Slurm jobs of notebook servers.

Sub-commands are listed in one table, `SUBCOMMANDS`: name -> "module:Class",
where the class has `help`, `add_arguments(parser)` and `run(args) -> int`.
Add a verb by adding a line (jobs list/cancel/reconcile live in their own modules).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..lazy import load

#: sub-command -> "module:Class" (class with help, add_arguments, run)
SUBCOMMANDS: dict[str, str] = {
    "presets": "scip_jupyter.arc.cli:PresetsCommand",
    # jobs of notebook servers (helper H2: scip_jupyter/arc/jobs_cli.py)
    "jobs": "scip_jupyter.arc.jobs_cli:JobsCommand",
    "cancel": "scip_jupyter.arc.jobs_cli:CancelCommand",
    "reconcile": "scip_jupyter.arc.jobs_cli:ReconcileCommand",
    # Slurm accounts and associations from arc.yaml + allocations.yaml (issue 10)
    "accounts": "scip_jupyter.arc.accounts:AccountsCommand",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="arc_command", required=True, metavar="COMMAND")
    for name, spec in SUBCOMMANDS.items():
        try:
            command = load(spec)
        except (ImportError, AttributeError) as exc:
            p = sub.add_parser(name, help=f"(unavailable: {exc})")
            p.set_defaults(_arc_error=f"{name}: unavailable ({exc})")
            continue
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_arc_run=command.run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "_arc_error", None):
        print(f"scip-jupyter arc {args._arc_error}", file=sys.stderr)
        return 2
    return int(args._arc_run(args) or 0)


class PresetsCommand:
    help = "list the ARC cluster presets (from $SCIP_ARC_PRESETS or hub_config/arc.yaml)"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--file", help="arc.yaml to read instead of the default")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from ..config import ConfigError
        from .presets import default_presets_path, load_presets

        path = args.file or default_presets_path()
        try:
            presets = load_presets(path)
        except (ConfigError, OSError) as exc:
            print(str(exc), file=sys.stderr)
            return 1
        rows = [preset_summary(p) for p in presets.clusters]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"ARC presets ({path})")
        for column in ("name", "site", "jurisdiction", "network", "transport", "max walltime", "GPU types", "partitions"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                r["name"], r["site"], r["jurisdiction"], r["network"], r["transport"], r["max_walltime"],
                ", ".join(r["gpu_types"]) or "-", ", ".join(r["partitions"]),
            )
        Console(width=max(160, Console().width)).print(table)
        return 0


def preset_summary(p) -> dict:
    """One preset as plain data (the CLI, the server extension and widgets show the same fields)."""
    t = p.transport
    transport = "local" if t.kind == "local" else f"ssh {t.user + '@' if t.user else ''}{t.host}"
    return {
        "name": p.name,
        "display_name": p.display_name or p.name,
        "site": p.site,
        "jurisdiction": p.jurisdiction,
        "network": p.network.mode,
        "transport": transport,
        "max_walltime": p.walltime.maximum,
        "walltime_tiers": list(p.walltime.tiers),
        "gpu_types": list(p.gpu_types),
        "partitions": list(p.partitions),
        "max_jobs_per_user": p.max_jobs_per_user,
    }
