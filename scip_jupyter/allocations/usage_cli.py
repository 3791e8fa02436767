"""`scip-jupyter usage`: GPU-hours of notebook servers and Slurm jobs, as a table, CSV or chart.

    scip-jupyter usage                          # this period, every project, a table
    scip-jupyter usage --project researchers --since 2026-11-01 --until 2026-12-01
    scip-jupyter usage --user ana --csv ana.csv --plot ana.png
    scip-jupyter usage --reconcile              # read sacct into the ledger first (local Slurm)
    scip-jupyter usage --watch 300              # the hub's service: reconcile every 300 s, no report

The ledger is `--ledger URL`, else `$SCIP_LEDGER_URL`, else the embedded hub's
`.state/hub/private/allocations.sqlite`. Dates are UTC days (`--until` excluded).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

from ..i18n import _

#: Above this many intervals the report shows a progress bar (on a terminal).
PROGRESS_FROM = 2000


def default_ledger_url() -> str:
    env = os.environ.get("SCIP_LEDGER_URL")
    if env:
        return env
    from ..embedded import HubSettings

    state = Path(os.environ.get("SCIP_HUB_STATE") or HubSettings.from_env({}).state_dir)
    return f"sqlite:///{state / 'private' / 'allocations.sqlite'}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", help="a group or course (allocations.yaml, courses.yaml) or a Slurm account")
    parser.add_argument("--user", help="one hub user")
    parser.add_argument("--since", help="first UTC day, YYYY-MM-DD (default: start of this period)")
    parser.add_argument("--until", help="UTC day after the last, YYYY-MM-DD (default: now)")
    parser.add_argument("--csv", metavar="FILE", help="also write one line per day, user, account and source")
    parser.add_argument("--plot", metavar="FILE.png", help="also draw GPU-hours per day stacked by user")
    parser.add_argument("--ledger", metavar="URL", help="SQLAlchemy URL of the ledger (default: $SCIP_LEDGER_URL)")
    parser.add_argument("--allocations", help="allocations.yaml (default: $SCIP_ALLOCATIONS_FILE or hub_config/)")
    parser.add_argument("--reconcile", action="store_true", help="read Slurm's accounting (sacct) into the ledger first")
    parser.add_argument("--cluster", action="append", help="arc.yaml preset(s) to reconcile (default: local-slurm)")
    parser.add_argument("--no-sacct", action="store_true", help="with --watch: only release holdings of servers the hub does not run")
    parser.add_argument("--watch", type=float, metavar="SECONDS",
                        help="reconcile every SECONDS until stopped, print no report (the hub's usage service)")


def _window(args, allocations, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    from .policy import period_window
    from .quotas import Period
    from .usage import parse_day

    period = allocations.period if allocations else Period.month
    since = parse_day(args.since, "--since") if args.since else period_window(period, now)[0]
    until = parse_day(args.until, "--until") if args.until else now
    if until <= since:
        raise ValueError(_("--until: {until} is not after --since {since}").format(
            until=until.isoformat(), since=since.isoformat()))
    return since, until


def reconcile(ledger, allocations, clusters: list[str]) -> list[str]:
    """Read sacct for each local preset; returns one line per cluster for people."""
    from ..arc.presets import load_default_presets
    from ..arc.transport import transport_for
    from .usage_sacct import SacctReconciler

    presets = load_default_presets()
    lines = []
    for name in clusters:
        preset = presets.get(name)
        if preset.transport.kind != "local":
            lines.append(_("{cluster}: not read (sacct is not allowed through {kind})").format(
                cluster=name, kind=preset.transport.kind))
            continue
        result = SacctReconciler(ledger, preset, transport_for(preset), allocations).run()
        lines.append(_("{cluster}: {read} jobs in sacct, {ours} from notebook servers ({new} new)").format(
            cluster=name, read=result.read, ours=result.ours, new=result.new))
    return lines


def run(args: argparse.Namespace) -> int:
    from ..arc.accounts import default_allocations_path
    from ..config import ConfigError
    from .ledger import Ledger, utcnow
    from .quotas import load_allocations
    from .usage import build_report, load_intervals, plot, write_csv

    try:
        path = args.allocations or default_allocations_path()
        allocations = load_allocations(path) if (args.allocations or Path(path).exists()) else None
    except (ConfigError, OSError) as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.watch is not None and args.watch <= 0:
        print(_("--watch: {value} must be a positive number of seconds").format(value=args.watch), file=sys.stderr)
        return 2
    now = utcnow()
    try:
        since, until = _window(args, allocations, now)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        ledger = Ledger(args.ledger or default_ledger_url())
    except Exception as exc:  # noqa: BLE001 - the URL may hold a password: name only the error's kind
        print(_("--ledger: the ledger cannot be opened ({error})").format(error=type(exc).__name__), file=sys.stderr)
        return 1
    clusters = [] if args.no_sacct else (args.cluster or ["local-slurm"])
    try:
        if args.watch is not None:
            return _watch(ledger, allocations, clusters, args.watch)
        if args.reconcile:
            for line in reconcile(ledger, allocations, clusters):
                print(line)
        intervals = load_intervals(ledger, since, until)
        report = build_report(intervals, since, until, now, project=args.project, user=args.user,
                              progress=_progress(len(intervals)))
    except Exception as exc:  # noqa: BLE001 - a person reads this, not a traceback
        print(_("usage: {error}").format(error=exc), file=sys.stderr)
        return 1
    finally:
        ledger.dispose()
    print_table(report)
    _print_reclaimed(args, since, until)
    if args.csv:
        write_csv(report, args.csv)
        print(_("wrote {path}").format(path=args.csv))
    if args.plot:
        plot(report, args.plot)
        print(_("wrote {path}").format(path=args.plot))
    return 0


def _print_reclaimed(args, since, until) -> None:
    """GPU-hours that GPU culling reclaimed, per group and course (scip_jupyter.culling; docs/culling.md)."""
    from ..culling.cli import reclaimed_lines

    try:
        print("\n".join(reclaimed_lines(args.ledger or default_ledger_url(), since, until, args.project, args.user)))
    except Exception as exc:  # noqa: BLE001 - the usage table above stands on its own
        print(_("usage: {error}").format(error=type(exc).__name__), file=sys.stderr)


def _progress(count: int):
    """A rich progress bar over the intervals when there are many (else None)."""
    if count < PROGRESS_FROM:
        return None
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task(_("reading usage"), total=count)
    bar.start()

    def advance(i: int) -> None:
        bar.update(task, completed=i)
        if i + 500 >= count:
            bar.update(task, completed=count)
            bar.stop()

    return advance


def print_table(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from .usage import account_label, source_label

    table = Table(title=_("GPU-hours from {since} to {until} (UTC)").format(
        since=report.since.strftime("%Y-%m-%d %H:%M"), until=report.until.strftime("%Y-%m-%d %H:%M")))
    table.add_column(_("user"))
    table.add_column(_("account"))
    table.add_column(_("source"))
    table.add_column(_("GPU-hours"), justify="right")
    for row in report.rows:
        table.add_row(row.user, account_label(row.account), source_label(row.source), f"{row.gpu_hours:.2f}")
    table.add_section()
    table.add_row(_("total"), "", "", f"{report.total:.2f}")
    Console(width=max(100, Console().width)).print(table)


def sweep_servers(ledger) -> list[int]:
    """As a hub service (JupyterHub gives it $JUPYTERHUB_API_URL and a token): release this hub's
    holdings of servers the hub does not run or start. At the service's first round after a hub
    restart, servers that died while the hub was down stop counting; running ones keep their
    one holding. Outside a hub: nothing."""
    api_url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if not api_url or not token:
        return []
    from ..arc.hub_hooks import servers_from_hub

    snapshot = ledger.clock()
    running, _users = servers_from_hub(api_url, token)
    return ledger.release_stale(running, snapshot, "the hub does not run this server (usage service)")


def _watch(ledger, allocations, clusters: list[str], every: float) -> int:
    """Reconcile every `every` seconds until stopped (SIGTERM/SIGINT end it)."""
    import logging

    from ..signals import stop_on_signals

    log = logging.getLogger("scip_jupyter.usage")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s usage: %(message)s")
    stop_on_signals()  # the hub stops its services with SIGINT, then SIGTERM: end at once, also mid-round
    try:
        _watch_rounds(ledger, allocations, clusters, every, log)
    except KeyboardInterrupt:  # the ledger's writes are transactions: an interrupted round rolls back
        pass
    return 0


def _watch_rounds(ledger, allocations, clusters: list[str], every: float, log) -> None:
    while True:
        try:
            released = sweep_servers(ledger)
            if released:
                log.info("released %d holding(s) of servers this hub does not run", len(released))
        except Exception as exc:  # noqa: BLE001 - keep watching; say why this round failed
            log.warning("server sweep failed: %s", exc)
        try:
            for line in reconcile(ledger, allocations, clusters):
                log.info("%s", line)
        except Exception as exc:  # noqa: BLE001 - keep watching; say why this round failed
            log.warning("reconcile failed: %s", exc)
        time.sleep(every)
