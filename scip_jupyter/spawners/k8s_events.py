"""Pure decisions about a starting pod: is it stuck, and how to say so in words.

Kubernetes reports trouble as events and pod status (`FailedScheduling` with
`0/8 nodes are available: 8 Insufficient nvidia.com/mig-3g.40gb`,
`ErrImagePull`, `ImagePullBackOff`, `CrashLoopBackOff`). Left alone, the
person waits for the start timeout and then reads raw events. Here:

* `find_trouble(events, pod)` -> a `PodTrouble` as soon as one of those shows;
* `trouble_message(...)` -> what was asked, why it cannot run, what to try
  (naming the profiles with free units now);
* `progress_words(event)` -> a spawn progress line in words for any event.

`SCIPKubeSpawner` (kube.py) watches its pod with these and ends the spawn at
once; nothing here does I/O. Text goes through `_()` (catalog `k8s.po`).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..i18n import _

#: Kinds of trouble that end a spawn at once.
UNSCHEDULABLE, IMAGE, CRASH = "unschedulable", "image", "crash"
#: Container waiting reasons (pod status) and what they mean.
WAITING_REASONS = {
    "ErrImagePull": IMAGE,
    "ImagePullBackOff": IMAGE,
    "InvalidImageName": IMAGE,
    "ErrImageNeverPull": IMAGE,
    "CrashLoopBackOff": CRASH,
}
_INSUFFICIENT = re.compile(r"Insufficient ([A-Za-z0-9./_-]*[A-Za-z0-9])")
_MIG = re.compile(r"^nvidia\.com/mig-(.+)$")


@dataclass(frozen=True)
class PodTrouble:
    """Why a pod cannot run: kind (UNSCHEDULABLE, IMAGE, CRASH), the raw reason and message (for logs)."""

    kind: str
    reason: str
    detail: str = ""


def _event_trouble(event: Mapping[str, Any]) -> PodTrouble | None:
    reason = event.get("reason") or ""
    message = event.get("message") or ""
    if reason == "FailedScheduling":
        return PodTrouble(UNSCHEDULABLE, reason, message)
    if reason in WAITING_REASONS:
        return PodTrouble(WAITING_REASONS[reason], reason, message)
    if reason in ("Failed", "BackOff"):
        for known, kind in WAITING_REASONS.items():
            if known in message:
                return PodTrouble(kind, known, message)
        if "pulling image" in message.lower() or "pull image" in message.lower():
            return PodTrouble(IMAGE, reason, message)
        if "restarting failed container" in message.lower():
            return PodTrouble(CRASH, "CrashLoopBackOff", message)
    return None


def find_trouble(events: Iterable[Mapping[str, Any]], pod: Mapping[str, Any] | None) -> PodTrouble | None:
    """The first reason this pod cannot run, from its status or its events; None while all is well.

    >>> find_trouble([{"reason": "FailedScheduling", "message": "0/8 nodes are available: 8 Insufficient nvidia.com/gpu."}], None).kind
    'unschedulable'
    >>> pod = {"status": {"containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    >>> find_trouble([], pod).kind
    'crash'
    >>> find_trouble([{"reason": "Pulling", "message": "Pulling image"}], {"status": {"phase": "Pending"}}) is None
    True
    """
    status = (pod or {}).get("status") or {}
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = ((container or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in WAITING_REASONS:
            return PodTrouble(WAITING_REASONS[waiting["reason"]], waiting["reason"], waiting.get("message") or "")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and condition.get("reason") == "Unschedulable":
            return PodTrouble(UNSCHEDULABLE, "Unschedulable", condition.get("message") or "")
    for event in events:
        trouble = _event_trouble(event)
        if trouble:
            return trouble
    return None


def resource_words(resource: str) -> str:
    """A Kubernetes resource name as a person says it.

    >>> resource_words("nvidia.com/mig-3g.40gb"), resource_words("nvidia.com/gpu"), resource_words("memory")
    ('GPU slice 3g.40gb (MIG)', 'whole GPU', 'memory')
    """
    mig = _MIG.match(resource)
    if mig:
        return _("GPU slice {slice} (MIG)").format(slice=mig.group(1))
    return {
        "nvidia.com/gpu": _("whole GPU"),
        "cpu": _("CPU cores"),
        "memory": _("memory"),
        "ephemeral-storage": _("local disk"),
        "pods": _("room for more servers"),
    }.get(resource, resource)


def scheduling_words(detail: str) -> str:
    """What a FailedScheduling message says is missing, in words.

    >>> scheduling_words("0/8 nodes are available: 8 Insufficient nvidia.com/mig-3g.40gb. preemption: 0/8 nodes")
    'no node has a free GPU slice 3g.40gb (MIG)'
    >>> scheduling_words("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.")
    'no node offers this kind of GPU at this site'
    """
    missing = list(dict.fromkeys(_INSUFFICIENT.findall(detail)))
    if missing:
        return _("no node has a free {what}").format(what=_(" or ").join(resource_words(r) for r in missing))
    if "node affinity" in detail or "node selector" in detail or "didn't match" in detail:
        return _("no node offers this kind of GPU at this site")
    if "taint" in detail:
        return _("the nodes that could run it are reserved")
    return _("the cluster has no room for it now")


def trouble_message(
    display_name: str,
    trouble: PodTrouble,
    image: str = "",
    alternatives: Sequence[tuple[str, int]] = (),
) -> str:
    """What was asked, why it cannot run, what to try. `alternatives` are (profile name, free units) now.

    >>> t = PodTrouble(UNSCHEDULABLE, "FailedScheduling", "0/8 nodes are available: 8 Insufficient nvidia.com/mig-3g.40gb.")
    >>> print(trouble_message("H100 slice 3g.40gb", t, alternatives=[("CPU (2 cores)", 12)]))
    Your server “H100 slice 3g.40gb” cannot start: no node has a free GPU slice 3g.40gb (MIG). Try again later, or choose a profile with free units now: CPU (2 cores) (12 free).
    """
    asked = _("Your server “{profile}” cannot start").format(profile=display_name)
    if trouble.kind == UNSCHEDULABLE:
        why = scheduling_words(trouble.detail)
    elif trouble.kind == IMAGE:
        why = _("its software image {image} could not be downloaded").format(image=image or "?")
    else:
        why = _("the notebook server in it stops right after it starts")
    free = [f"{name} ({_('{count} free').format(count=count)})" for name, count in alternatives if count > 0]
    if trouble.kind == UNSCHEDULABLE:
        todo = (
            _("Try again later, or choose a profile with free units now: {profiles}.").format(profiles=", ".join(free))
            if free
            else _("None of your profiles has free units now; try again later.")
        )
    else:
        todo = _("This is a problem of the platform, not of your work: please tell support.")
        if free:
            todo += " " + _("Meanwhile, these profiles have free units now: {profiles}.").format(profiles=", ".join(free))
    return f"{asked}: {why}. {todo}"


def trouble_html(message: str) -> str:
    """The message for the spawn page (escaped: profile and image names come from configuration)."""
    return html.escape(message)


#: Event reasons -> progress words (anything else: a neutral line).
_PROGRESS = {
    "Scheduled": lambda e: _("A node was found for your server"),
    "Pulling": lambda e: _("Downloading the software image (the first time can take minutes)"),
    "Pulled": lambda e: _("The software image is ready"),
    "Created": lambda e: _("The server's container is created"),
    "Started": lambda e: _("The notebook server is starting"),
    "FailedScheduling": lambda e: _("Waiting for room on the cluster: {why}").format(why=scheduling_words(e.get("message") or "")),
    "TriggeredScaleUp": lambda e: _("The cluster is adding a node for your server"),
}


def progress_words(event: Mapping[str, Any]) -> str:
    """One spawn progress line, in words, for a Kubernetes event.

    >>> progress_words({"reason": "Pulling", "message": "Pulling image \\"x\\""})
    'Downloading the software image (the first time can take minutes)'
    >>> progress_words({"reason": "SomethingNew", "type": "Normal"})
    'Preparing your server'
    """
    words = _PROGRESS.get(event.get("reason") or "")
    if words:
        return words(event)
    trouble = _event_trouble(event)
    if trouble and trouble.kind == IMAGE:
        return _("The software image could not be downloaded")
    if trouble and trouble.kind == CRASH:
        return _("The notebook server stopped right after starting")
    return _("Preparing your server")
