"""Pure builders of a local single-user server's environment from a validated profile.

What a profile means on one machine: `SCIP_PROFILE`, `SCIP_PROFILE_KIND`,
`SCIP_SITE`, `SCIP_JURISDICTION`, one `SCIP_LABEL_<NAME>` per label (the same
labels pods and Slurm jobs carry), `SCIP_COURSE` when the options name a course,
and `CUDA_VISIBLE_DEVICES` listing real devices only where `/dev/nvidia<N>`
exist. No I/O except `detect_gpus` (a glob).
"""

from __future__ import annotations

import glob
import re
from typing import Any

from .. import LABEL_PREFIX
from ..catalog import Profile, ProfileKind

GPU_DEVICE_GLOB = "/dev/nvidia[0-9]*"


def detect_gpus(pattern: str = GPU_DEVICE_GLOB) -> list[int]:
    """Indices of the NVIDIA devices present (`/dev/nvidia0` -> 0); `[]` on a machine without GPUs."""
    found = []
    for path in glob.glob(pattern):
        m = re.search(r"nvidia(\d+)$", path)
        if m:
            found.append(int(m.group(1)))
    return sorted(found)


def label_env(labels: dict[str, str]) -> dict[str, str]:
    """Labels as environment variables.

    >>> label_env({"scip.ca/user": "alice", "scip.ca/site": "east"})
    {'SCIP_LABEL_USER': 'alice', 'SCIP_LABEL_SITE': 'east'}
    """
    out = {}
    for key, value in labels.items():
        name = key.split("/", 1)[1] if key.startswith(LABEL_PREFIX + "/") else key
        out["SCIP_LABEL_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()] = value
    return out


def gpu_environment(profile: Profile, gpus: list[int]) -> dict[str, str]:
    """CUDA_VISIBLE_DEVICES and SCIP_GPU for a profile on a host with these GPU indices.

    >>> from scip_jupyter.catalog import Profile
    >>> mig = Profile(slug="m", display_name="m", kind="mig", gpu_model="h100", mig_profile="1g.10gb",
    ...               image="i", site="s", jurisdiction="CA")
    >>> gpu_environment(mig, [])["SCIP_GPU"], gpu_environment(mig, [])["CUDA_VISIBLE_DEVICES"]
    ('none', '')
    >>> gpu_environment(mig, [0, 1])["CUDA_VISIBLE_DEVICES"]
    '0'
    """
    if profile.kind is ProfileKind.cpu:
        return {"CUDA_VISIBLE_DEVICES": "", "SCIP_GPU": "none"}
    if not gpus:
        return {
            "CUDA_VISIBLE_DEVICES": "",
            "SCIP_GPU": "none",
            "SCIP_GPU_NOTE": f"profile {profile.slug} asks for {profile.summary}, "
            "but this host has no NVIDIA GPU: the server runs on CPU only",
        }
    if profile.kind is ProfileKind.gpu:
        devices = gpus[: profile.gpu_count]
        wanted = f"{profile.gpu_model}:{profile.gpu_count}"
    else:
        # Locally a MIG slice cannot be addressed without nvidia-smi; give one whole device.
        devices = gpus[:1]
        wanted = f"{profile.gpu_model}:mig-{profile.mig_profile}"
    env = {"CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in devices), "SCIP_GPU": wanted}
    if len(devices) < max(profile.gpu_count, 1):
        env["SCIP_GPU_NOTE"] = f"profile {profile.slug} asks for {profile.gpu_count} GPUs; this host has {len(devices)}"
    return env


def profile_environment(
    profile: Profile, labels: dict[str, str], gpus: list[int], options: dict[str, Any] | None = None
) -> dict[str, str]:
    """Everything a validated profile adds to a local server's environment."""
    env = {
        "SCIP_PROFILE": profile.slug,
        "SCIP_PROFILE_KIND": profile.kind.value,
        "SCIP_SITE": profile.site,
        "SCIP_JURISDICTION": profile.jurisdiction,
    }
    env.update(label_env(labels))
    if options and options.get("course"):
        env["SCIP_COURSE"] = options["course"]
    env.update(gpu_environment(profile, gpus))
    return env
