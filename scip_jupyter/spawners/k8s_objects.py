"""Pure builders: a catalog profile -> KubeSpawner overrides and `profile_list` entries.

Nothing here talks to Kubernetes. `profile_overrides` returns the
`kubespawner_override` dict KubeSpawner applies for a chosen profile (GPU or
MIG extended resources, node selector, tolerations, labels, CPU/memory, image,
a memory-backed /dev/shm); `profile_list_for` wraps those into KubeSpawner's
`profile_list` entries. `slurm_client_mounts` builds the ConfigMap mounts a
notebook pod needs for courses, ARC presets and Slurm (never a shared secret). The snapshot tests in
tests/unit/test_k8s_objects.py pin the output and validate every pod built from
it with kubernetes-validate.

List-valued settings (tolerations, volumes, volume mounts) must *add to* what
the deployment configured (z2jh sets home volumes and its own tolerations), but
KubeSpawner's override replaces lists. `Extend` is a small callable override
that appends instead, and compares by value so snapshots stay plain.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from kubespawner.slugs import is_valid_label, safe_slug

from ..catalog import Profile, ProfileKind

#: Node label set by NVIDIA GPU feature discovery with the GPU product name.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
#: Taint the NVIDIA GPU operator (and most clusters) put on GPU nodes.
GPU_TAINT_KEY = "nvidia.com/gpu"
#: Product names GPU feature discovery reports for the GPU models of catalog.GPU_MODELS.
DEFAULT_GPU_PRODUCTS: dict[str, str] = {
    "h100": "NVIDIA-H100-80GB-HBM3",
    "a100": "NVIDIA-A100-SXM4-80GB",
    "l40s": "NVIDIA-L40S",
}
SHM_VOLUME = "scip-shm"
#: Pod Security Standard "restricted" (Kubernetes >= 1.25): every user pod runs non-root,
#: with the runtime's default seccomp profile, no privilege escalation and no capability.
#: KubeSpawner merges these over what its uid/gid/allow_privilege_escalation settings give.
RESTRICTED_POD_SECURITY: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
#: Labels that differ per user or server; other labels are the same for all pods of a profile.
_USER_LABELS = ("user", "server")


@dataclass(frozen=True)
class Placement:
    """Where GPU pods go on this cluster (site settings, from the hub config).

    gpu_products: GPU model -> value of the `nvidia.com/gpu.product` node label;
      a model missing here gets no product node selector.
    site_node_label: node label key whose value must equal the profile's site
      (e.g. "scip.ca/site"); empty for single-site clusters.
    tolerate_gpu_taint: add a toleration for the `nvidia.com/gpu` NoSchedule taint
      to GPU and MIG pods.
    """

    gpu_products: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_GPU_PRODUCTS))
    site_node_label: str = ""
    tolerate_gpu_taint: bool = True


@dataclass(frozen=True)
class Extend:
    """A KubeSpawner override that appends `items` to a list setting (by name, no duplicates).

    KubeSpawner calls callable overrides with the spawner; settings given as
    dicts (KubeSpawner allows `{key: item}` for lists) are flattened in key order.
    """

    trait: str
    items: tuple[dict[str, Any], ...]

    def __call__(self, spawner: Any) -> list[dict[str, Any]]:
        current = getattr(spawner, self.trait)
        if isinstance(current, dict):
            current = [current[k] for k in sorted(current)]
        return merge_named(list(current or []), self.items)


def merge_named(current: list[dict[str, Any]], extra: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add items to a list setting; an item with the same identity (name, else
    mountPath, else key) replaces the one already there.

    >>> merge_named([{"name": "home"}, {"name": "scip-shm", "x": 1}], [{"name": "scip-shm", "x": 2}])
    [{'name': 'home'}, {'name': 'scip-shm', 'x': 2}]
    """

    def ident(item: dict[str, Any]) -> Any:
        return item.get("name") or item.get("mountPath") or item.get("key") or repr(sorted(item.items()))

    out = [dict(i) for i in current]
    index = {ident(i): n for n, i in enumerate(out)}
    for item in extra:
        if ident(item) in index:
            out[index[ident(item)]] = dict(item)
        else:
            index[ident(item)] = len(out)
            out.append(dict(item))
    return out


def label_value(value: str) -> str:
    """A valid Kubernetes label value for any string (KubeSpawner's safe slug).

    >>> label_value("alice"), label_value("alice@example.org")
    ('alice', 'alice-example-org---7a64adf2')
    """
    return safe_slug(str(value), is_valid=is_valid_label)


def pod_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Sanitised label values; keys are the platform's own (prefix/name)."""
    return {key: label_value(value) for key, value in labels.items()}


def pod_annotations(labels: Mapping[str, str]) -> dict[str, str]:
    """The unsanitised values as annotations, so a label's hashed value can be traced back.

    KubeSpawner expands `{username}`-style templates in annotation values with
    str.format, so braces are doubled to keep user-chosen names literal.
    """
    return {key: str(value).replace("{", "{{").replace("}", "}}") for key, value in labels.items()}


def gpu_resources(profile: Profile) -> dict[str, str]:
    """Extended resources of a profile: `nvidia.com/gpu: n` or `nvidia.com/mig-<slice>: 1` (mixed MIG strategy)."""
    resource = profile.gpu_resource
    return {resource[0]: str(resource[1])} if resource else {}


def node_selector(profile: Profile, placement: Placement) -> dict[str, str]:
    selector: dict[str, str] = {}
    if profile.kind is not ProfileKind.cpu and profile.gpu_model in placement.gpu_products:
        # Under the mixed MIG strategy the product label names the parent GPU, so it
        # also keeps an H100 1g.10gb slice off an A100 exposing the same slice name.
        selector[GPU_PRODUCT_LABEL] = placement.gpu_products[profile.gpu_model]
    if placement.site_node_label:
        selector[placement.site_node_label] = label_value(profile.site)
    return selector


def tolerations(profile: Profile, placement: Placement) -> list[dict[str, str]]:
    if profile.kind is ProfileKind.cpu or not placement.tolerate_gpu_taint:
        return []
    return [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]


def shm_volume(size: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A memory-backed /dev/shm (PyTorch DataLoader workers need more than the 64M default)."""
    volume = {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": size}}
    mount = {"name": SHM_VOLUME, "mountPath": "/dev/shm"}
    return volume, mount


def profile_overrides(
    profile: Profile,
    labels: Mapping[str, str],
    placement: Placement | None = None,
    volumes: Iterable[dict[str, Any]] = (),
    volume_mounts: Iterable[dict[str, Any]] = (),
    environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The `kubespawner_override` for one profile.

    `labels` are the platform labels (prefix/name -> raw value, see
    SCIPSpawnerMixin.scip_labels); their values are sanitised here. `volumes`,
    `volume_mounts` and `environment` are extra (e.g. Slurm client mounts) and
    are added to, never replace, what the deployment configured.
    """
    placement = placement or Placement()
    shm, shm_mount = shm_volume(profile.shm_size)
    overrides: dict[str, Any] = {
        "image": profile.image,
        "cpu_guarantee": profile.cpu_guarantee,
        "cpu_limit": profile.cpu_limit,
        "mem_guarantee": profile.mem_guarantee,
        "mem_limit": profile.mem_limit,
        "extra_labels": pod_labels(labels),
        "extra_annotations": pod_annotations(labels),
        "node_selector": node_selector(profile, placement),
        "tolerations": Extend("tolerations", tuple(tolerations(profile, placement))),
        "volumes": Extend("volumes", (shm, *volumes)),
        "volume_mounts": Extend("volume_mounts", (shm_mount, *volume_mounts)),
        "pod_security_context": dict(RESTRICTED_POD_SECURITY),
        "container_security_context": {k: (dict(v) if isinstance(v, dict) else v) for k, v in RESTRICTED_CONTAINER_SECURITY.items()},
    }
    resources = gpu_resources(profile)
    if resources:
        # Extended resources cannot be overcommitted: Kubernetes requires guarantee == limit.
        overrides["extra_resource_limits"] = dict(resources)
        overrides["extra_resource_guarantees"] = dict(resources)
    else:
        # No GPU: hide any the node has, so CPU profiles never see a device by accident.
        overrides["environment"] = {"NVIDIA_VISIBLE_DEVICES": "void"}
    if environment:
        overrides["environment"] = {**overrides.get("environment", {}), **environment}
    return overrides


def profile_entry(profile: Profile, overrides: dict[str, Any]) -> dict[str, Any]:
    """One KubeSpawner `profile_list` entry; text is HTML-escaped because
    KubeSpawner's form template renders it without autoescaping."""
    return {
        "slug": profile.slug,
        "display_name": html.escape(profile.display_name),
        "description": html.escape(profile.description),
        "default": profile.default,
        "kubespawner_override": overrides,
    }


def profile_list_for(
    profiles: Iterable[Profile],
    labels_for: Callable[[Profile], Mapping[str, str]],
    placement: Placement | None = None,
    volumes: Iterable[dict[str, Any]] = (),
    volume_mounts: Iterable[dict[str, Any]] = (),
    environment: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """KubeSpawner `profile_list` entries for the given (already allowed) profiles."""
    volumes, volume_mounts = tuple(volumes), tuple(volume_mounts)
    return [
        profile_entry(p, profile_overrides(p, labels_for(p), placement, volumes, volume_mounts, environment))
        for p in profiles
    ]


@dataclass(frozen=True)
class SecretRef:
    """A reference to one key of an existing Secret (secrets are never inlined).

    No shared credential (munge key, robot SSH key) is ever mounted in a user
    pod: a server gets only its own person's short-lived credentials, from a
    per-server Secret the hub writes (see identity.py).
    """

    name: str
    key: str


#: Where the scip-jupyter-config ConfigMap is mounted in notebook pods: the same path as in the
#: hub pod, so every path the hub writes into a server's environment holds in the pod too.
POD_CONFIG_DIR = "/usr/local/etc/scip"


def slurm_client_mounts(
    slurm_config_map: str = "",
    scip_config_map: str = "",
    config_files: Iterable[str] = ("courses.yaml", "arc.yaml"),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, str]]:
    """Volumes, mounts and environment for the SCIP and Slurm clients in a notebook pod.

    slurm_config_map -> /etc/slurm (slurm.conf of the cluster; sets SLURM_CONF),
    scip_config_map -> /usr/local/etc/scip (courses, ARC presets), with the variables
    the single-user side reads: SCIP_COURSES_FILE and SCIP_ARC_PRESETS, for the
    files of `config_files` the ConfigMap carries. Nothing secret is mounted here.
    """
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    env: dict[str, str] = {}
    if slurm_config_map:
        volumes.append({"name": "scip-slurm-conf", "configMap": {"name": slurm_config_map}})
        mounts.append({"name": "scip-slurm-conf", "mountPath": "/etc/slurm", "readOnly": True})
        env["SLURM_CONF"] = "/etc/slurm/slurm.conf"
    if scip_config_map:
        volumes.append({"name": "scip-config", "configMap": {"name": scip_config_map}})
        mounts.append({"name": "scip-config", "mountPath": POD_CONFIG_DIR, "readOnly": True})
        files = set(config_files)
        if "courses.yaml" in files:
            env["SCIP_COURSES_FILE"] = f"{POD_CONFIG_DIR}/courses.yaml"
        if "arc.yaml" in files:
            env["SCIP_ARC_PRESETS"] = f"{POD_CONFIG_DIR}/arc.yaml"
    return volumes, mounts, env


def expand_overrides(overrides: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Resolve `Extend` overrides against `base` settings (plain values), for tests and tools.

    >>> expand_overrides({"volumes": Extend("volumes", ({"name": "b"},))}, {"volumes": [{"name": "a"}]})
    {'volumes': [{'name': 'a'}, {'name': 'b'}]}
    """
    base = dict(base or {})
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        out[key] = merge_named(list(base.get(key) or []), value.items) if isinstance(value, Extend) else value
    return out


__all__ = [
    "DEFAULT_GPU_PRODUCTS",
    "Extend",
    "Placement",
    "SecretRef",
    "expand_overrides",
    "label_value",
    "profile_list_for",
    "profile_overrides",
    "slurm_client_mounts",
]
