"""`scip-jupyter arc accounts sync`: the Slurm accounts and associations our config declares.

What is declared (pure, `desired`):

* every account arc.yaml gives users on the cluster (`accounts.users`, `accounts.default`),
  each user named there associated with it; `"*"` stands for the Slurm users listed in
  allocations.yaml's `slurm.users`;
* every group's `slurm_account` in allocations.yaml, associated with `slurm.users`,
  with the group's concurrent GPU limits (`max_gpus`) mirrored as `GrpTRES`
  (`gres/gpu:h100=1,gres/gpu:h100_1g.10gb=4`) for the flavours the cluster tracks as TRES.

What exists is read with `sacctmgr -nP show ...` and `plan` gives the `sacctmgr -i`
commands that close the difference: add missing accounts, add missing associations,
set GrpTRES where it differs (a limit that is no longer declared is cleared with `-1`).
Nothing is ever removed: an account or association made by hand stays. Running sync
again plans nothing (idempotent). Every command goes through the preset's transport.

With `AccountingStorageEnforce=associations,limits` (scripts/slurm-local), Slurm refuses
a job whose account its user has no association with: "Invalid account or
account/partition combination specified".
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..i18n import _

#: The TRES prefix of a GPU flavour (Slurm's name for a GPU type or MIG slice).
GPU_TRES = "gres/gpu"


@dataclass(frozen=True)
class Desired:
    """What the config declares for one Slurm cluster."""

    accounts: dict[str, str]  # account -> description
    associations: set[tuple[str, str]]  # (account, user)
    grp_tres: dict[str, dict[str, int]]  # account -> {tres name: count}
    skipped: list[str] = field(default_factory=list)  # flavours the cluster does not track


@dataclass(frozen=True)
class Existing:
    accounts: set[str]
    associations: set[tuple[str, str]]
    grp_tres: dict[str, dict[str, int]]  # account-level association -> its GrpTRES


def parse_tres(text: str) -> dict[str, int]:
    """`gres/gpu:h100=1,cpu=4` -> {"gres/gpu:h100": 1, "cpu": 4}.

    >>> parse_tres("gres/gpu:h100=1,gres/gpu:h100_1g.10gb=4")
    {'gres/gpu:h100': 1, 'gres/gpu:h100_1g.10gb': 4}
    >>> parse_tres("")
    {}
    """
    out: dict[str, int] = {}
    for part in (text or "").split(","):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            try:
                out[name] = int(value)
            except ValueError:
                continue
    return out


def format_tres(tres: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(tres.items()))


def parse_existing(accounts_text: str, assoc_text: str) -> Existing:
    """From `sacctmgr -nP show account format=account` and
    `sacctmgr -nP show assoc where cluster=C format=account,user,grptres`.

    >>> e = parse_existing("def-demo\\nroot\\n", "def-demo||gres/gpu:h100=1\\ndef-demo|root|\\n")
    >>> sorted(e.accounts), sorted(e.associations), e.grp_tres
    (['def-demo', 'root'], [('def-demo', 'root')], {'def-demo': {'gres/gpu:h100': 1}})
    """
    accounts = {line.strip().split("|")[0] for line in accounts_text.splitlines() if line.strip()}
    associations: set[tuple[str, str]] = set()
    grp: dict[str, dict[str, int]] = {}
    for line in assoc_text.splitlines():
        parts = line.split("|")
        if len(parts) < 3 or not parts[0]:
            continue  # defensive: an unexpected line is skipped, never shifts columns
        account, user, tres = parts[0].strip(), parts[1].strip(), parts[2].strip()
        if user:
            associations.add((account, user))
        else:
            grp[account] = parse_tres(tres)
    return Existing(accounts, associations, grp)


def desired(preset, allocations, tracked_tres: Iterable[str]) -> Desired:
    """What arc.yaml's preset and allocations.yaml declare for the preset's cluster (pure)."""
    tracked = set(tracked_tres)
    wildcard_users = list(allocations.slurm.users) if allocations and allocations.slurm else []
    accounts: dict[str, str] = {}
    associations: set[tuple[str, str]] = set()
    rules = preset.accounts
    for user, names in rules.users.items():
        for account in names:
            accounts.setdefault(account, f"from arc.yaml ({preset.name})")
            for who in (wildcard_users if user == "*" else [user]):
                associations.add((account, who))
    if rules.default:
        accounts.setdefault(rules.default, f"from arc.yaml ({preset.name})")
    grp: dict[str, dict[str, int]] = {}
    skipped: list[str] = []
    for group, quota in (allocations.groups.items() if allocations else []):
        if not quota.slurm_account:
            continue
        accounts[quota.slurm_account] = f"allocation of group {group}"
        for who in wildcard_users:
            associations.add((quota.slurm_account, who))
        limits: dict[str, int] = {}
        for flavour, units in quota.max_gpus.items():
            name = f"{GPU_TRES}:{flavour}"
            if flavour == "*" or name not in tracked:
                skipped.append(f"{group}.max_gpus.{flavour}")
                continue
            limits[name] = units
        grp[quota.slurm_account] = limits
    return Desired(accounts, associations, grp, skipped)


def plan(want: Desired, have: Existing, cluster: str) -> list[list[str]]:
    """The sacctmgr commands that make `have` hold what `want` declares (pure; empty: in step)."""
    commands: list[list[str]] = []
    for account in sorted(set(want.accounts) - have.accounts):
        commands.append(["sacctmgr", "-i", "add", "account", account, f"Cluster={cluster}",
                         f"Description={want.accounts[account]}", "Organization=scip"])
    for account, user in sorted(want.associations - have.associations):
        commands.append(["sacctmgr", "-i", "add", "user", user, f"Account={account}", f"Cluster={cluster}"])
    for account, limits in sorted(want.grp_tres.items()):
        current = {k: v for k, v in have.grp_tres.get(account, {}).items() if k.startswith(GPU_TRES)}
        if current == limits:
            continue
        change = dict(limits)
        for name in current:
            change.setdefault(name, -1)  # no longer declared: clear it
        commands.append(["sacctmgr", "-i", "modify", "account", "where", f"name={account}", f"cluster={cluster}",
                         "set", f"GrpTRES={format_tres(change)}"])
    return commands


def tracked_tres(text: str) -> list[str]:
    """TRES names from `sacctmgr -nP show tres format=type,name`: `gres|gpu:h100` -> `gres/gpu:h100`.

    >>> tracked_tres("cpu|\\ngres|gpu\\ngres|gpu:h100\\n")
    ['cpu', 'gres/gpu', 'gres/gpu:h100']
    """
    out = []
    for line in text.splitlines():
        kind, _sep, name = line.strip().partition("|")
        if kind:
            out.append(f"{kind}/{name}" if name else kind)
    return out


# ---------------------------------------------------------------- I/O


@dataclass
class SyncResult:
    cluster: str
    commands: list[list[str]]
    skipped: list[str]
    applied: bool


def read_existing(transport, cluster: str) -> tuple[Existing, list[str]]:
    accounts = transport.run_sync(["sacctmgr", "-nP", "show", "account", "format=account"], timeout=30)
    assoc = transport.run_sync(
        ["sacctmgr", "-nP", "show", "assoc", "where", f"cluster={cluster}", "format=account,user,grptres"], timeout=30
    )
    tres = transport.run_sync(["sacctmgr", "-nP", "show", "tres", "format=type,name"], timeout=30)
    return parse_existing(accounts, assoc), tracked_tres(tres)


def cluster_name(transport) -> str:
    """The Slurm ClusterName the accounting database knows (the first registered cluster)."""
    out = transport.run_sync(["sacctmgr", "-nP", "show", "cluster", "format=cluster"], timeout=30)
    names = [line.strip() for line in out.splitlines() if line.strip()]
    if not names:
        raise RuntimeError(_("no cluster is registered in Slurm's accounting database (sacctmgr show cluster)"))
    return names[0]


def sync(preset, allocations, transport, apply: bool = True) -> SyncResult:
    """Read what exists, plan, and (apply) run the commands. Idempotent."""
    cluster = cluster_name(transport)
    have, tres = read_existing(transport, cluster)
    want = desired(preset, allocations, tres)
    commands = plan(want, have, cluster)
    if apply:
        for argv in commands:
            transport.run_sync(argv, timeout=60)
    return SyncResult(cluster, commands, want.skipped, apply)


class AccountsCommand:
    help = "Slurm accounts: `sync` creates the accounts and associations arc.yaml and allocations.yaml declare"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["sync"], help="sync: create what is missing (idempotent)")
        parser.add_argument("--presets", help="arc.yaml (default: $SCIP_ARC_PRESETS or the shipped one)")
        parser.add_argument("--allocations", help="allocations.yaml (default: $SCIP_ALLOCATIONS_FILE or hub_config/)")
        parser.add_argument("--cluster", help="arc.yaml preset (default: allocations.yaml's slurm.cluster)")
        parser.add_argument("--dry-run", action="store_true", help="print the sacctmgr commands, run none")

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        from ..allocations.quotas import load_allocations
        from ..config import ConfigError
        from .presets import load_default_presets, load_presets
        from .transport import SlurmError, transport_for

        try:
            presets = load_presets(args.presets) if args.presets else load_default_presets()
            allocations = load_allocations(args.allocations or default_allocations_path())
        except (ConfigError, OSError) as exc:
            print(str(exc), file=sys.stderr)
            return 1
        name = args.cluster or (allocations.slurm.cluster if allocations.slurm else "local-slurm")
        try:
            preset = presets.get(name)
        except Exception as exc:  # noqa: BLE001 - the presets' own message names the allowed ones
            print(f"--cluster: {exc}", file=sys.stderr)
            return 2
        if preset.transport.kind != "local":
            print(_("--cluster: {name!r} is reached through {kind}; sacctmgr runs only where Slurm's accounting "
                    "is local (automation nodes allow sbatch, squeue, scontrol, scancel)").format(
                        name=name, kind=preset.transport.kind), file=sys.stderr)
            return 2
        try:
            result = sync(preset, allocations, transport_for(preset), apply=not args.dry_run)
        except (SlurmError, RuntimeError) as exc:
            print(_("accounts sync failed: {error}").format(error=exc), file=sys.stderr)
            return 1
        for flavour in result.skipped:
            print(_("not mirrored as GrpTRES (cluster {cluster} does not track it as a TRES): {field}").format(
                cluster=result.cluster, field=flavour))
        if not result.commands:
            print(_("Slurm accounts of cluster {cluster} are in step with the config; nothing to change").format(
                cluster=result.cluster))
            return 0
        verb = _("would run") if args.dry_run else _("ran")
        for argv in result.commands:
            print(f"{verb}: {' '.join(argv)}")
        return 0


def default_allocations_path() -> str:
    import os
    from pathlib import Path

    env = os.environ.get("SCIP_ALLOCATIONS_FILE")
    if env:
        return env
    return str(Path(__file__).resolve().parents[2] / "hub_config" / "allocations.yaml")

