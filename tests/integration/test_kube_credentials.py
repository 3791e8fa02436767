"""No shared credential in any user pod: for every catalog profile, the whole pod manifest the real
SCIPKubeSpawner sends (kmock) holds no munge key, no shared SSH key, no Secret and no secret value
except that person's own server API token, with which the server fetches its person's own
short-lived Slurm token / SSH certificate from the hub (scip_jupyter/identity_hub.py)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from scip_jupyter.catalog import load_catalog
from scip_jupyter.spawners.kube import SCIPKubeSpawner
from tests.fixtures.k8s import CATALOG, make_spawner, make_user

pytestmark = [pytest.mark.k8s, pytest.mark.asyncio(loop_scope="session")]

#: Text that must never appear in a user pod (case-insensitive): shared cluster credentials.
FORBIDDEN = [r"munge", r"PRIVATE KEY", r"client_key", r"robot", r"id_ed25519", r"id_rsa", r"jwt_hs256", r"user_ca", r"SLURM_JWT"]
#: Values that look like secrets (JWTs, long hex or base64 runs).
SECRET_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.|\b[0-9a-f]{32,}\b|[A-Za-z0-9+/]{40,}={0,2}")


def _profiles():
    return [p.slug for p in load_catalog(CATALOG).profiles]


def _strings(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


@pytest.mark.parametrize("profile", _profiles())
async def test_every_profiles_pod_carries_only_its_persons_own_token(kube_api, kube_namespace, profile):
    own_token = "tok-" + "a1" * 20  # this person's server API token
    spawner = make_spawner(
        SCIPKubeSpawner, kube_api, make_user("rita@uni.example", "researchers", "students", "instructors"),
        kube_namespace, {"profile": profile},
        slurm_config_map="scip-slurm-client", scip_config_map="scip-jupyter-config",
    )
    spawner.api_token = own_token
    await asyncio.wait_for(spawner.start(), 60)
    try:
        (pod,) = kube_api.emulator.live_pods(kube_namespace)
        text = json.dumps(pod)
        for word in FORBIDDEN:
            assert not re.search(word, text, re.I), f"{profile}: {word!r} in the pod manifest"
        spec = pod["spec"]
        assert [v for v in spec.get("volumes", []) if "secret" in v or "projected" in v and "secret" in json.dumps(v)] == []
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            assert not [e for e in c.get("env", []) if "secretKeyRef" in json.dumps(e.get("valueFrom", {}))], c["name"]
            assert not [e for e in c.get("envFrom", []) if "secretRef" in e], c["name"]
        secrets = {s for s in _strings(pod) if SECRET_LIKE.search(s)} - {own_token}
        assert not secrets, f"{profile}: secret-like values that are not the person's own token: {secrets}"
        env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
        assert env["JUPYTERHUB_API_TOKEN"] == own_token
        assert "JUPYTERHUB_API_URL" in env  # where the server asks for its person's credentials
        assert spec.get("automountServiceAccountToken") is False  # no service-account token either
    finally:
        await spawner.stop()
