"""`scip-jupyter arc jobs|cancel|reconcile`: the Slurm jobs of notebook servers.

    scip-jupyter arc jobs                      this server's jobs (JUPYTERHUB_USER / JUPYTERHUB_SERVER_NAME)
    scip-jupyter arc jobs --all                every tagged job on the presets' clusters, by server (admin)
    scip-jupyter arc cancel 1234               cancel one job of this server
    scip-jupyter arc cancel --all              cancel every job of this server
    scip-jupyter arc reconcile --running alice/default      cancel tagged jobs of every other server
    scip-jupyter arc reconcile --hub --every 300            ask the hub which servers run (hub service)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from ..signals import stop_on_signals
from .hub_hooks import ARCCleanup, HubAccounts, people_tagged, reconcile_plan, server_key, servers_from_hub
from .registry import JobRegistry
from .server_jobs import NotThisServersJob, ServerJobs, check_job_id, preset_transport, summary
from .tags import JobTags


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="notebook user (default: $JUPYTERHUB_USER or $USER)")
    parser.add_argument("--server", help="server name (default: $JUPYTERHUB_SERVER_NAME; '' is the unnamed server)")
    parser.add_argument("--preset", action="append", default=[], help="also look on this preset's cluster (repeatable)")


def _server_jobs(args) -> ServerJobs:
    tags = JobTags.from_environment()
    tags = JobTags(user=args.user or tags.user, server=args.server or tags.server)
    return ServerJobs(tags, JobRegistry.default(), preset_transport, presets=args.preset, poll_interval=0)


def _cleanup(args) -> ARCCleanup:
    """Tagged jobs of every server on the --preset clusters (default: every preset's)."""
    cleanup = ARCCleanup(transport_for=preset_transport)
    if args.preset:
        cleanup.presets = args.preset
    return cleanup


def _table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("preset", "job", "state", "reason", "start", "elapsed", "server"):
        table.add_column(col)
    for r in rows:
        tags = r.get("tags") or {}
        table.add_row(
            r.get("preset", ""), r["job_id"], r["phase"], r.get("reason_text") or r.get("reason") or "",
            (r.get("start") or "")[:19] + (" (est.)" if r.get("start_is_estimate") else ""),
            "" if r.get("elapsed_s") is None else str(r["elapsed_s"]) + "s",
            f"{tags.get('user', '')}/{tags.get('server', '')}",
        )
    Console(width=max(140, Console().width)).print(table)


class JobsCommand:
    help = "list the Slurm jobs of a notebook server (or, with --all, of every server)"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        _server_args(parser)
        parser.add_argument("--all", action="store_true", help="every tagged job on the presets' clusters")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    @staticmethod
    def run(args) -> int:
        if args.all:
            cleanup = _cleanup(args)
            body = {"jobs": [], "errors": []}
            for preset in cleanup.presets:
                try:
                    jobs = asyncio.run(cleanup.queue(preset))
                except Exception as exc:
                    body["errors"].append({"preset": preset, "message": str(exc)})
                    continue
                body["jobs"] += [dict(j.to_json(), preset=preset) for j in jobs if j.tags is not None]
        else:
            body = summary(asyncio.run(_server_jobs(args).list()))
        if args.json:
            print(json.dumps(body, indent=2))
        else:
            _table(body["jobs"], "ARC jobs")
        for err in body["errors"]:
            print(f"{err['preset']}: {err['message']}", file=sys.stderr)
        return 1 if body["errors"] else 0


class CancelCommand:
    help = "cancel a Slurm job of a notebook server (only that server's jobs)"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        _server_args(parser)
        parser.add_argument("job_id", nargs="?", help="job id, or <job>_<task> for one array task")
        parser.add_argument("--all", action="store_true", help="cancel every job of the server")

    @staticmethod
    def run(args) -> int:
        jobs = _server_jobs(args)
        if args.all == bool(args.job_id):
            print("scip-jupyter arc cancel: give a job id or --all (not both)", file=sys.stderr)
            return 2
        if args.all:
            done = asyncio.run(jobs.cancel_all())
            for preset, ids in done.items():
                print(f"{preset}: cancelled {', '.join(ids) or 'nothing'}")
            return 0
        try:
            asyncio.run(jobs.cancel(check_job_id(args.job_id)))
        except (ValueError, NotThisServersJob) as exc:
            print(f"scip-jupyter arc cancel: {exc}", file=sys.stderr)
            return 1
        print(f"cancelled {args.job_id}")
        return 0


class ReconcileCommand:
    help = "cancel tagged Slurm jobs whose notebook server is not running (hub start-up, periodic)"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--preset", action="append", default=[], help="preset whose cluster to clean (repeatable)")
        parser.add_argument("--running", action="append", default=[], metavar="USER/SERVER",
                            help="a server that runs (repeatable); its jobs are kept")
        parser.add_argument("--hub", action="store_true",
                            help="ask the hub which servers run ($JUPYTERHUB_API_URL, $JUPYTERHUB_API_TOKEN); "
                            "only jobs of the hub's users are considered")
        parser.add_argument("--every", type=float, default=0, help="repeat every N seconds (as a hub service)")
        parser.add_argument("--only-user", action="append", default=None, metavar="USER",
                            help="consider only this user's jobs (repeatable; default: every user)")
        parser.add_argument("--dry-run", action="store_true", help="say what would be cancelled, cancel nothing")
        parser.add_argument("--none-running", action="store_true",
                            help="no server runs (e.g. after a hub outage): every tagged job in scope is cancelled")
        parser.add_argument("--account-template", default="", metavar="TEMPLATE",
                            help="a person's Slurm account, e.g. '{username}' (default with --hub: the hub's own "
                            "mapping; without: the embedded hub's jupyter-NAME rule, see --account-prefix)")
        parser.add_argument("--account-prefix", default="jupyter-",
                            help="prefix of the embedded hub's per-person accounts (identity.system_username)")

    @staticmethod
    def run(args) -> int:
        # Without a scope every server would count as stopped and every person's jobs be cancelled.
        scopes = [name for name, given in (("--hub", args.hub), ("--running", bool(args.running)),
                                           ("--none-running", args.none_running)) if given]
        if not scopes or (args.none_running and len(scopes) > 1):
            print("reconcile: say which servers run: --hub (ask the hub) and/or --running USER/SERVER (repeatable), "
                  "or alone --none-running (cancel every tagged job in scope); nothing cancelled", file=sys.stderr)
            return 2
        running: set[tuple[str, str]] = set()
        for item in args.running:
            user, _, server = item.partition("/")
            if not user:
                print(f"--running: {item!r} is not USER/SERVER", file=sys.stderr)
                return 2
            running.add(server_key(user, server))
        if args.hub and not (os.environ.get("JUPYTERHUB_API_URL") and os.environ.get("JUPYTERHUB_API_TOKEN")):
            print("--hub: JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN must be set (run as a hub service)", file=sys.stderr)
            return 2
        cleanup = _cleanup(args)
        if args.every:
            stop_on_signals()  # the hub stops its services with SIGINT, then SIGTERM
        try:
            while True:
                code = _reconcile_once(cleanup, running, args)
                if not args.every:
                    return code
                time.sleep(args.every)
        except KeyboardInterrupt:  # the hub stopping its service: a normal end
            return 0



def _account_mapping(args):
    """Who runs as which account: a job is cancelled only when it runs as its tagged person's account."""
    if args.account_template:
        return lambda name: args.account_template.format(username=name)
    if args.hub:  # the mapping the hub mints credentials with (identity_hub.SCIPCredentials.account_of)
        return HubAccounts(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    from ..identity import system_username

    return lambda name: system_username(name, args.account_prefix)


def _reconcile_once(cleanup: ARCCleanup, running: set, args) -> int:
    now_running = set(running)
    only = set(args.only_user) if args.only_user else None
    account_of = _account_mapping(args)
    if args.hub:
        try:
            hub_running, hub_users = servers_from_hub(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
        except Exception as exc:  # never cancel on a guess: no hub answer, no cancelling
            print(f"reconcile: the hub did not say which servers run ({exc}); nothing cancelled", file=sys.stderr, flush=True)
            return 1
        now_running |= hub_running
        only = hub_users if only is None else only & hub_users
    try:
        if args.dry_run:
            for preset in cleanup.presets:
                jobs = asyncio.run(cleanup.queue(preset))
                if hasattr(account_of, "prefetch"):
                    account_of.prefetch(people_tagged(jobs, only))
                plan = reconcile_plan(jobs, now_running, only, account_of)
                for key, ids in plan.cancel.items():
                    print(f"{preset}: would cancel {', '.join(ids)} of stopped server {key[0]}/{key[1]}")
                for job_id, why in plan.skipped:
                    print(f"{preset}: would keep {job_id}: {why}")
            return 0
        done = asyncio.run(cleanup.reconcile(now_running, only, account_of))
    except OSError as exc:  # the hub's account mapping did not answer: never cancel on a guess
        print(f"reconcile: the hub did not say whose accounts are whose ({exc}); nothing cancelled", file=sys.stderr, flush=True)
        return 1
    for preset, ids in done.items():
        print(f"reconcile {preset}: {len(now_running)} running server(s); cancelled {', '.join(ids) or 'nothing'}", flush=True)
    return 0 if len(done) == len(cleanup.presets) else 1


__all__ = ["JobsCommand", "CancelCommand", "ReconcileCommand"]
