"""The ARC launcher model: a Dask cluster request on a Slurm preset, and its life.

`LauncherModel` holds the choices a person makes (preset, account, partition,
GPU type and count, walltime, workers) as traitlets, so views link to them both
ways. Every change is checked by the presets' validator
(`scip_jupyter.arc.presets.validate_request`) BEFORE it is applied: a bad value
raises `ARCRequestError` (naming the field and the allowed values) and leaves
the model as it was. Actions (`launch`, `scale`, `adapt`, `shutdown`) drive an
`ARCCluster` built by an injectable factory; `monitor` is a `JobMonitor` over
that cluster's jobs (a cached `JobPoller` on the cluster's transport).

Submission happens in the cluster's event loop, after `launch`/`scale` return.
The model listens to the cluster (`ARCCluster.add_submit_listener`): when Slurm
refuses or does not answer, the phase becomes "failed" and `message` says which
cluster failed, Slurm's words and what to check; Scale tries again, and the next
successful submission puts the phase back to "running". `sync_cluster()` reads
`cluster.last_error` for clusters without listeners (views call it on refresh).

A preset this notebook cannot use is listed but unavailable, the way the spawn
form greys a profile that cannot start: `unavailable` maps its name to the reason,
which is exactly the refusal ARCCluster would give (`preset_refusal`): an in-job
preset (its workers cannot connect back), a preset where the person has no
account, and a preset outside the jurisdiction of a project whose data this
server holds (`$SCIP_DATA_JURISDICTIONS`, `presets.check_data_jurisdiction`).
Choosing one raises that refusal and changes nothing; the default is the first
preset that is available.

The model never imports ipywidgets (views live in scip_widgets).

>>> from scip_jupyter.arc.presets import PresetFile, example_preset
>>> m = LauncherModel(PresetFile(clusters=[example_preset()]), accounts=lambda p: ["def-alice"])
>>> (m.preset, m.account, m.partition, m.walltime, m.gpu_type, m.gpus)
('demo', 'def-alice', 'cpu', '03:00:00', '', 0)
>>> m.set("gpu_type", "h100_1g.10gb"); (m.gpus, m.partition)
(1, 'gpu')
>>> try:
...     m.set("walltime", "9-00:00:00")
... except ARCRequestError as e:
...     print(e.field, "|", e.problem)
walltime | 9-00:00:00 is over the maximum of cluster 'demo' (7-00:00:00)
>>> m.walltime
'03:00:00'
>>> fir = example_preset(name="fir", site="sfu", jurisdiction="CA-BC")
>>> m = LauncherModel(PresetFile(clusters=[example_preset(), fir]), accounts=lambda p: ["def-alice"],
...                   data_jurisdictions={"lab-bc": "CA-BC"})
>>> m.preset, m.unavailable
('fir', {'demo': "project: the data of lab-bc must stay in CA-BC; cluster preset 'demo' (site demo-site) runs in CA. Choose one in CA-BC: fir"})
"""

from __future__ import annotations

import getpass
import os
from typing import Any, Callable, Mapping, Sequence

from traitlets import Any as AnyTrait
from traitlets import Dict, Float, HasTraits, Instance, Int, Unicode, observe, validate

from ..i18n import _, ngettext
from .monitor import JobMonitor
from .presets import (
    ARCPresetRefused,
    ARCRequestError,
    ClusterPreset,
    PresetFile,
    ValidRequest,
    check_connect_back,
    check_data_jurisdiction,
    check_scale,
    validate_request,
)

#: The fields a person sets, in the order a form shows them.
FIELDS = ("preset", "account", "partition", "gpu_type", "gpus", "walltime", "workers")
#: Life of the launched cluster.
#: "failed": the cluster runs, but Slurm refused (or did not answer) its last worker submission.
#: "error": launching or shutting down failed (no usable cluster).
PHASES = ("idle", "launching", "running", "failed", "closing", "closed", "error")
#: Phases with a live cluster that accepts scale/adapt.
LIVE = ("running", "failed")


def current_user() -> str:
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def configured_accounts(user: str) -> Callable[[ClusterPreset], list[str]]:
    """The user's accounts on a preset, as ARCCluster finds them (`cluster.resolve_accounts`:
    sacctmgr where the preset says so and the transport is local, else the preset's
    `accounts.users`). Looked up once per preset: the form asks often."""
    cache: dict[str, list[str]] = {}

    def accounts(preset: ClusterPreset) -> list[str]:
        if preset.name not in cache:
            if preset.accounts.source == "sacctmgr":
                from .cluster import resolve_accounts
                from .transport import transport_for

                cache[preset.name] = resolve_accounts(preset, user, transport_for(preset))
            else:
                cache[preset.name] = preset.accounts.configured_for(user)
        return list(cache[preset.name])

    return accounts


def preset_refusal(preset: ClusterPreset, presets: PresetFile, data: Mapping[str, str]) -> ARCPresetRefused | None:
    """Why ARCCluster would refuse `preset` before submitting anything, whatever the request
    (None: it would not): in-job network mode, then the data jurisdiction of `data` ({project:
    jurisdiction} held by this server). The very checks ARCCluster runs, in its order, on the same
    candidates, so the reason shown is the refusal the person would get. Pure.

    >>> from scip_jupyter.arc.presets import example_preset
    >>> presets = PresetFile(clusters=[example_preset(), example_preset(name="bc", jurisdiction="CA-BC")])
    >>> print(preset_refusal(presets.get("demo"), presets, {"lab-bc": "CA-BC"}))
    project: the data of lab-bc must stay in CA-BC; cluster preset 'demo' (site demo-site) runs in CA. Choose one in CA-BC: bc
    >>> preset_refusal(presets.get("bc"), presets, {"lab-bc": "CA-BC"}) is None
    True
    """
    try:
        check_connect_back(preset, presets.clusters)
        check_data_jurisdiction(preset, data, [q for q in presets.clusters if q.network.mode == "connect-back"])
    except ARCPresetRefused as exc:
        return exc
    return None


def refusal_reason(exc: ARCRequestError) -> str:
    """A refusal in words for a greyed choice: the whole message of a refusal that names what
    fits itself, else the field and the problem (the `allowed values` tail is for forms)."""
    return str(exc) if isinstance(exc, ARCPresetRefused) else f"{exc.field}: {exc.problem}"


def default_cluster_factory(**kwargs):
    from .cluster import ARCCluster  # dask-jobqueue is heavy: import on launch only

    return ARCCluster(**kwargs)


class LauncherModel(HasTraits):
    """Choices for one ARC Dask cluster, validated against its preset, and the cluster's life.

    Change choices with ``model.set(field, value)`` (or plain assignment): the
    whole request is re-validated first; a bad value raises ARCRequestError and
    changes nothing. Dependent fields follow (choosing a GPU type makes the GPU
    count at least 1 and picks the preset's GPU partition; a GPU count of 0 clears the type).
    """

    preset = Unicode(help="Preset (cluster) name, one of arc.yaml's clusters.")
    account = Unicode(help="Slurm account (one of the user's accounts on the preset).")
    partition = Unicode(help="Partition; '' lets the preset (or Slurm) choose.")
    gpu_type = Unicode(help="GPU type as Slurm names it (MIG slices included); '' for none.")
    gpus = Int(0, help="GPUs per worker job (0 = CPU only; a MIG slice is always 1).")
    walltime = Unicode(help="Walltime per worker job, Slurm format (e.g. 03:00:00, 2-00:00:00).")
    workers = Int(2, help="Dask workers to start on Launch / Scale.")

    phase = Unicode("idle", help=f"Cluster life: one of {', '.join(PHASES)}.")
    message = Unicode("", help="What happened last (shown by views): an error names the field.")
    request = Instance(ValidRequest, allow_none=True, help="The last validated request (all defaults filled in).")
    cluster = AnyTrait(None, allow_none=True, help="The launched cluster (ARCCluster), or None.")
    monitor = Instance(JobMonitor, allow_none=True, help="Job monitor of the launched cluster, or None.")
    unavailable = Dict(help="Preset name -> why it cannot be used from this server (the refusal ARCCluster gives); "
                       "views grey these presets out with the reason.")
    poll_interval = Float(30.0, help="Seconds between squeue calls of the monitor's poller (sites ask for >= 30).")
    refresh_interval = Float(5.0, help="Seconds between refreshes of the monitor view (cheap: the poller caches).")

    def __init__(
        self,
        presets: PresetFile | None = None,
        *,
        accounts: Callable[[ClusterPreset], Sequence[str]] | None = None,
        cluster_factory: Callable[..., Any] | None = None,
        user: str | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        data_jurisdictions: Mapping[str, str] | None = None,
        **kwargs,
    ):
        if presets is None:
            from .presets import load_default_presets

            presets = load_default_presets()
        self.presets = presets
        self.user = user or current_user()
        self.accounts_for = accounts or configured_accounts(self.user)
        self.cluster_factory = cluster_factory or default_cluster_factory
        self.cluster_kwargs = dict(cluster_kwargs or {})  # extra ARCCluster arguments (tests, experts)
        self._applying = False
        choices = {k: kwargs.pop(k) for k in FIELDS if k in kwargs}
        super().__init__(**kwargs)
        self.data_jurisdictions, self._refusals = self._find_refusals(data_jurisdictions)
        self.unavailable = {name: refusal_reason(exc) for name, exc in self._refusals.items()}
        start = choices.pop("preset", None)
        if start is not None:
            self._refuse_unavailable(start)
            self._apply(self._validated(start, self._defaults(start) | choices))
        else:
            self._apply(self._first_valid(choices))

    # ------------------------------------------------------------ availability

    def _find_refusals(self, data: Mapping[str, str] | None) -> tuple[dict[str, str] | None, dict[str, ARCRequestError]]:
        """The project data this server holds and, per preset, the refusal ARCCluster would give.

        `data` None: the server's `$SCIP_DATA_JURISDICTIONS`, read as ARCCluster reads it; when it
        cannot be read every preset is refused with that reason (the check fails closed). A preset
        where the person has no account is refused with the validator's words."""
        if data is None:
            from .cluster import held_data  # one reader of the variable, shared with ARCCluster

            try:
                data = held_data()
            except ARCRequestError as exc:
                return None, {name: exc for name in self.presets.names()}
        data = dict(data)
        refusals: dict[str, ARCRequestError] = {}
        for p in self.presets.clusters:
            refused = preset_refusal(p, self.presets, data)
            if refused is None:
                try:
                    validate_request(p, {}, list(self.accounts_for(p)))
                except ARCRequestError as exc:
                    if exc.field == "account":  # "you have no account on cluster ...": nothing to choose
                        refused = exc
            if refused is not None:
                refusals[p.name] = refused
        return data, refusals

    def _refuse_unavailable(self, preset: str) -> None:
        self.presets.get(preset)  # an unknown name: ARCRequestError("preset", ..., the names)
        if preset in self._refusals:
            raise self._refusals[preset]

    def _first_valid(self, choices: dict[str, Any]) -> ValidRequest:
        """The request with `choices` on the first available preset whose defaults validate (as the
        spawn form picks the first profile that can start); with none available, the first whose
        defaults validate at all, so the form still shows every preset greyed with its reason. A bad
        choice raises on that preset: it never moves the model to another one."""
        names = self.presets.names()
        ordered = [n for n in names if n not in self._refusals] + [n for n in names if n in self._refusals]
        first_error: ARCRequestError | None = None
        for name in ordered:
            try:
                self._validated(name, self._defaults(name))
            except ARCRequestError as exc:
                first_error = first_error or exc
                continue
            return self._validated(name, self._defaults(name) | choices)
        raise first_error

    def available_presets(self) -> list[str]:
        """Preset names this server can launch on, in the file's order."""
        return [n for n in self.presets.names() if n not in self.unavailable]

    # ------------------------------------------------------------ choices

    def preset_object(self, name: str | None = None) -> ClusterPreset:
        return self.presets.get(name or self.preset)

    def choices(self, field: str) -> list[str]:
        """Values a view can offer for a field (free-text fields list suggestions)."""
        p = self.preset_object()
        if field == "preset":
            return self.presets.names()
        if field == "account":
            return [a for a in self.accounts_for(p) if p.accounts.matches(a)]
        if field == "partition":
            return list(p.partitions)
        if field == "gpu_type":
            return list(p.gpu_types)
        if field == "walltime":
            return list(p.walltime.tiers)
        raise ARCRequestError("field", _("{field} has no list of choices").format(field=repr(field)), ["preset", "account", "partition", "gpu_type", "walltime"])

    def _raw(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in FIELDS}

    def _defaults(self, preset: str) -> dict[str, Any]:
        """A fresh request on a preset: its defaults, keeping only the worker count."""
        return {"preset": preset, "account": "", "partition": "", "gpu_type": "", "gpus": 0, "walltime": "", "workers": self.workers}

    def _candidate(self, field: str, value: Any) -> dict[str, Any]:
        if field not in FIELDS:
            raise ARCRequestError("field", _("{field} is not a launcher field").format(field=repr(field)), list(FIELDS))
        if field == "preset":
            self._refuse_unavailable(value)
            return self._defaults(value)
        raw = self._raw() | {field: value}
        if field == "gpus" and value in (0, "0"):
            raw["gpu_type"] = ""
        if field == "gpu_type" and not value:
            raw["gpus"] = 0
        if field in ("gpus", "gpu_type") and self.partition in (self.preset_object().gpu_partition, self.preset_object().default_partition):
            raw["partition"] = ""  # let the preset pick the CPU or GPU partition again
        return raw

    def _validated(self, preset: str, raw: dict[str, Any]) -> ValidRequest:
        p = self.presets.get(preset)  # ARCRequestError("preset", ...) for an unknown name
        request = {k: v for k, v in raw.items() if k != "preset"}
        return validate_request(p, request, list(self.accounts_for(p)))

    def check(self, field: str, value: Any) -> ValidRequest:
        """Validate the request as it would be with `field` = `value` (changes nothing)."""
        raw = self._candidate(field, value)
        return self._validated(raw["preset"], raw)

    def set(self, field: str, value: Any) -> None:
        """Change one choice: validated first; on ARCRequestError nothing changes."""
        self._apply(self.check(field, value))

    def _apply(self, valid: ValidRequest) -> None:
        self._applying = True
        try:
            with self.hold_trait_notifications():
                self.preset = valid.preset
                self.account = valid.account
                self.partition = valid.partition or ""
                self.gpu_type = valid.gpu_type or ""
                self.gpus = valid.gpus
                self.walltime = valid.walltime
                self.workers = valid.workers
                self.request = valid
        finally:
            self._applying = False

    @validate(*FIELDS)
    def _validate_field(self, proposal):
        """Plain assignment (``model.walltime = ...``) is checked like ``set``."""
        name, value = proposal["trait"].name, proposal["value"]
        if self._applying or not self.preset:
            return value
        valid = self.check(name, value)
        normalised = {"partition": valid.partition or "", "gpu_type": valid.gpu_type or "", "walltime": valid.walltime}
        return normalised.get(name, value)

    @observe(*FIELDS)
    def _follow(self, change):
        """After a plain assignment, dependent fields follow as they do with ``set``."""
        if not self._applying:
            self._apply(self.check(change["name"], change["new"]))

    # ------------------------------------------------------------ actions

    def _require(self, *phases: str) -> None:
        if self.phase not in phases:
            raise ARCRequestError("phase", _("cannot do this while the cluster is {phase}").format(phase=self.phase), list(phases))

    def launch(self) -> Any:
        """Start the cluster on the preset and ask for `workers` workers."""
        self._require("idle", "closed", "error")
        self._refuse_unavailable(self.preset)
        valid = self.check("workers", self.workers)
        check_scale(self.preset_object(), valid.jobs)
        self.phase, self.message = "launching", _("Launching on {preset}...").format(preset=valid.preset)
        try:
            cluster = self.cluster_factory(**self._cluster_arguments(valid))
            self.cluster = cluster
            listen = getattr(cluster, "add_submit_listener", None)
            if listen is not None:
                listen(self._on_submit_result)
            if valid.workers:
                cluster.scale(valid.workers)
            self.monitor = self._monitor_for(cluster)
        except Exception as exc:  # noqa: BLE001 - shown inline; the person fixes and retries
            self._close_quietly()
            self.phase, self.message = "error", _("Launch failed: {error}").format(error=exc)
            raise
        if self.phase == "launching":  # a submission may already have failed (phase "failed")
            self.phase, self.message = "running", ngettext(
                "Launched on {preset}: {workers} worker requested.", "Launched on {preset}: {workers} workers requested.",
                valid.workers).format(preset=valid.preset, workers=valid.workers)
        return cluster

    def _cluster_arguments(self, valid: ValidRequest) -> dict[str, Any]:
        args: dict[str, Any] = {
            "preset": valid.preset,
            "presets": self.presets,
            "user": self.user,
            "user_accounts": list(self.accounts_for(self.preset_object(valid.preset))),
            "account": valid.account,
            "walltime": valid.walltime,
            "cores": valid.cores,
            "memory": valid.memory,
            "processes": valid.processes,
        }
        if valid.partition:
            args["partition"] = valid.partition
        if valid.gpus:
            args["gpu_type"], args["gpus"] = valid.gpu_type, valid.gpus
        args["data_jurisdictions"] = dict(self.data_jurisdictions or {})  # the table the presets were greyed by
        return args | self.cluster_kwargs

    def _monitor_for(self, cluster: Any) -> JobMonitor | None:
        if getattr(cluster, "transport", None) is None:
            return None
        return JobMonitor.for_cluster(cluster, poll_interval=self.poll_interval, preset=self.preset, interval=self.refresh_interval)

    def scale(self, workers: int | None = None) -> None:
        """Scale the running cluster to `workers` (default: the workers field); after a failed
        submission this submits the missing workers again."""
        self._require(*LIVE)
        if workers is not None and workers != self.workers:
            self.set("workers", workers)
        valid = self.check("workers", self.workers)
        check_scale(self.preset_object(), valid.jobs)
        self.cluster.scale(valid.workers)
        if self.phase == "running":  # "failed" keeps its message until a submission works
            self.message = ngettext("Scaling to {workers} worker.", "Scaling to {workers} workers.", valid.workers).format(
                workers=valid.workers)

    def adapt(self, minimum: int = 0, maximum: int | None = None) -> None:
        """Let Dask scale between `minimum` and `maximum` (default: the workers field)."""
        self._require(*LIVE)
        maximum = self.workers if maximum is None else maximum
        if not 0 <= minimum <= maximum:
            raise ARCRequestError("minimum", _("{minimum} must be between 0 and maximum ({maximum})").format(
                minimum=minimum, maximum=maximum), [f"0..{maximum}"])
        self.check("workers", maximum)
        check_scale(self.preset_object(), -(-maximum // self.request.processes))
        self.cluster.adapt(minimum=minimum, maximum=maximum)
        if self.phase == "running":
            self.message = _("Adapting between {minimum} and {maximum} workers.").format(minimum=minimum, maximum=maximum)

    def shutdown(self) -> None:
        """Close the cluster: its workers' Slurm jobs are cancelled."""
        self._require(*LIVE, "launching", "error")
        self._stop_listening()
        if self.cluster is None:  # a failed launch already closed what it started
            self.phase, self.message = "closed", _("No cluster was running.")
            return
        self.phase, self.message = "closing", _("Shutting down...")
        try:
            self.cluster.close()
        except Exception as exc:  # noqa: BLE001
            self.phase, self.message = "error", _("Shutdown failed: {error}").format(error=exc)
            raise
        self.phase, self.message = "closed", _("Cluster closed; its Slurm jobs were cancelled.")

    def _stop_listening(self) -> None:
        stop = getattr(self.cluster, "remove_submit_listener", None)
        if stop is not None:
            stop(self._on_submit_result)

    def _close_quietly(self) -> None:
        self._stop_listening()
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            try:
                cluster.close()
            except Exception:  # noqa: BLE001 - already failing; the launch error is the one to show
                pass

    # ------------------------------------------------------------ submission results

    def _on_submit_result(self, error: Any) -> None:
        """Listener of the cluster (called on its event loop): a failed submission, or None after a success."""
        if self.cluster is None or self.phase not in ("launching", *LIVE):
            return
        if error is not None:
            self.phase, self.message = "failed", str(error)
        elif self.phase == "failed":
            self.phase, self.message = "running", _("Workers submitted to {preset}.").format(preset=self.preset)

    def sync_cluster(self) -> None:
        """Follow `cluster.last_error` (for clusters that cannot call listeners; cheap, no Slurm call)."""
        if self.cluster is None or self.phase not in LIVE:
            return
        error = getattr(self.cluster, "last_error", None)
        if error is not None and (self.phase != "failed" or str(error) != self.message):
            self._on_submit_result(error)
        elif error is None and self.phase == "failed":
            self._on_submit_result(None)
