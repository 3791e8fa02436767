"""Validating spawn choices (`user_options`), wherever they come from, and the form.

Options arrive from the spawn form (lists of strings), raw from the REST API
(any JSON), or from a course launch link. The pipeline is always:

1. parse (`options_from_form`: no side effects, no validation),
2. validate (`validate_spawn_options`: never trusts its input; returns normalised
   options or raises `OptionsError` naming the field and the allowed values),
3. apply (the spawner, from the validated profile only).

`render_spawn_form` turns the profiles a user may choose into the HTML of the
hub's spawn form (jinja2, autoescaped): a pure function, snapshot-tested. Each
profile shows what it costs (GPU-hours per hour) and, when the spawner passes a
`ProfileStatus`, how many are free on the cluster now and what is left in the
allocation that would pay for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterable, Mapping, Sequence

from .catalog import SLUG_RE, Catalog, Profile, ProfileKind, parse_quantity
from .courses.sync import safe_relpath
from .i18n import _, current, ngettext
from .templating import render



@dataclass
class OptionsError(ValueError):
    field: str
    problem: str
    allowed: list[str]
    status: int = 400

    def __str__(self) -> str:
        allowed = ", ".join(self.allowed) if self.allowed else "(none for your groups)"
        return f"{self.field}: {self.problem}; allowed values: {allowed}"


#: Keys a client may send besides `profile`, with KubeSpawner's per-profile option convention.
EXTRA_KEYS = ("course", "notebook")
#: Form fields that belong to the hub's page, not to the spawn choice.
_FORM_NOISE = ("_xsrf",)
_MAX_TEXT = 200
#: Longest `notebook` path a launch may ask to open.
_MAX_PATH = 500


def options_from_form(formdata: dict[str, list[str]]) -> dict[str, Any]:
    """Parse the spawn form (no side effects, no validation).

    A field sent once becomes a string; a field sent several times stays a list,
    so that validation refuses it instead of silently picking one.

    >>> options_from_form({"profile": ["cpu-small"], "_xsrf": ["x"]})
    {'profile': 'cpu-small'}
    >>> options_from_form({"profile": ["a", "b"]})
    {'profile': ['a', 'b']}
    """
    out: dict[str, Any] = {}
    for key, values in formdata.items():
        if key in _FORM_NOISE or not values:
            continue
        out[key] = values[0] if len(values) == 1 else list(values)
    return out


def allowed_profiles(catalog: Catalog, groups: Iterable[str], extra_allowed: Iterable[str] = ()) -> list[Profile]:
    """Profiles the groups (or an extra grant such as an active course) allow, in catalog order."""
    groups, extra = set(groups), set(extra_allowed)
    return [p for p in catalog.profiles if p.allows(groups) or p.slug in extra]


def default_profile(allowed: Sequence[Profile]) -> Profile | None:
    """The catalog's default among the allowed profiles, else the first allowed one."""
    return next((p for p in allowed if p.default), allowed[0] if allowed else None)


def validate_spawn_options(
    options: Any, catalog: Catalog, groups: Iterable[str], extra_allowed: Iterable[str] = ()
) -> tuple[Profile, dict[str, Any]]:
    """Validate user_options against the catalog and the user's groups.

    `extra_allowed` are profile slugs granted by something other than groups
    (e.g. an active course). Returns the profile and the normalised options; the
    input is never modified.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise OptionsError("user_options", f"must be a JSON object, not {type(options).__name__}", ['{"profile": "<slug>"}'])
    allowed = allowed_profiles(catalog, groups, extra_allowed)
    allowed_slugs = [p.slug for p in allowed]
    unknown = sorted(str(k) for k in options if k != "profile" and k not in EXTRA_KEYS and not str(k).startswith("profile-option-"))
    if unknown:
        raise OptionsError(_short(unknown[0]), "unknown option", ["profile", *EXTRA_KEYS])
    slug = options.get("profile")
    if slug is None or slug == "":
        default = default_profile(allowed)
        if default is None:
            raise OptionsError("profile", "your groups allow no profile", [], status=403)
        slug = default.slug
    if not isinstance(slug, str):
        raise OptionsError("profile", f"must be one string, not {type(slug).__name__}", allowed_slugs)
    profile = catalog.get(slug)
    if profile is None:
        raise OptionsError("profile", f"unknown profile {_short(slug)!r}", allowed_slugs)
    if slug not in allowed_slugs:
        raise OptionsError("profile", f"profile {slug!r} is not allowed for your groups", allowed_slugs, status=403)
    for key in options:
        if str(key).startswith("profile-option-"):
            raise OptionsError(str(key), "this catalog defines no per-profile options", [])
    normalised: dict[str, Any] = {"profile": slug}
    course = _text_option(options, "course", _MAX_TEXT)
    if course is not None:
        if not SLUG_RE.match(course):
            raise OptionsError("course", f"{_short(course)!r} is not a course id (lowercase letters, digits and '-')", [])
        normalised["course"] = course
        # the notebook a course launch opens: a plain relative path inside the course folder
        notebook = _text_option(options, "notebook", _MAX_PATH)
        if notebook is not None:
            if not safe_relpath(notebook):
                raise OptionsError(
                    "notebook", "must be a relative path inside the course, without '..', '//', '\\', hidden parts "
                    "or control characters", ["week1/lab.ipynb"],
                )
            normalised["notebook"] = notebook
    # a notebook without a course opens nothing: it is dropped, not stored
    return profile, normalised


def _text_option(options: Mapping[str, Any], key: str, limit: int) -> str | None:
    """A text option: None when absent or empty (an empty form field), else a string of at most `limit`."""
    value = options.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise OptionsError(key, f"must be a string of at most {limit} characters", [])
    return value


def _short(value: str, limit: int = 60) -> str:
    # Error messages echo user input: keep them short.
    return value if len(value) <= limit else value[:limit] + "..."


# --- the spawn form -------------------------------------------------------------------------------
# Rendering only: every string a person reads goes through the translation catalog
# (scip_jupyter.i18n; the hub sets the language per request).


def _cores(value: float) -> str:
    return ngettext("%(n)s core", "%(n)s cores", 1 if value == 1 else 2) % {"n": f"{value:g}"}


def _memory(quantity: str) -> str:
    """Human memory size, in decimal GB as the catalog is written.

    >>> _memory("4G"), _memory("512M"), _memory("16Gi")
    ('4 GB', '0.5 GB', '17.2 GB')
    """
    return _("%(n)s GB") % {"n": f"{round(parse_quantity(quantity) / 1e9, 1):g}"}


def cost_summary(share: Fraction) -> str:
    """What an hour of a profile costs the allocation that pays for it.

    >>> cost_summary(Fraction(0)), cost_summary(Fraction(1)), cost_summary(Fraction(2)), cost_summary(Fraction(3, 7))
    ('no GPU-hours', '1 GPU-hour per hour', '2 GPU-hours per hour', '3/7 GPU-hour per hour')
    """
    if share == 0:
        return _("no GPU-hours")
    if share.denominator == 1:
        return ngettext("%(n)s GPU-hour per hour", "%(n)s GPU-hours per hour", share.numerator) % {"n": share.numerator}
    return _("%(fraction)s GPU-hour per hour") % {"fraction": f"{share.numerator}/{share.denominator}"}


@dataclass(frozen=True)
class ProfileStatus:
    """Live facts about one profile for the form (gathered by the spawner, plain data).

    `free`: servers of this profile that fit on the cluster now (None: unknown or
    not tracked); `allocation`: what is left in the account that would pay, in
    words ("" when allocations are off); `allocation_ok`: whether that account
    has room for one more; `allocation_left`/`allocation_limit`: the same as
    numbers for the bar (None: the bar reads the first "N of M" in `allocation`);
    `unavailable`: why this profile cannot start at all now (e.g. "the local Slurm
    is not running"), shown on the greyed card.
    """

    free: int | None = None
    allocation: str = ""
    allocation_ok: bool = True
    allocation_left: float | None = None
    allocation_limit: float | None = None
    unavailable: str = ""


_KIND_BADGE = {ProfileKind.cpu: "CPU", ProfileKind.mig: "MIG", ProfileKind.gpu: "GPU"}
_N_OF_M = re.compile(r"(\d+(?:\.\d+)?)\s+\S+\s+(\d+(?:\.\d+)?)")


def _free_text(profile: Profile, status: ProfileStatus | None) -> str:
    if status is None or profile.kind is ProfileKind.cpu:
        return ""
    if status.free is None:
        return _("Free on the cluster now: unknown")
    if status.free <= 0:
        return _("None free on the cluster now")
    return _("Free on the cluster now: %(n)s") % {"n": status.free}


def allocation_fraction(status: ProfileStatus | None) -> float | None:
    """How much of the paying allocation is left, 0..1, for the bar (None: no bar).

    >>> allocation_fraction(ProfileStatus(allocation="group r: 480 of 500 GPU-hours left this month"))
    0.96
    >>> allocation_fraction(ProfileStatus(allocation_left=0, allocation_limit=4)), allocation_fraction(None)
    (0.0, None)
    """
    if status is None:
        return None
    left, limit = status.allocation_left, status.allocation_limit
    if left is None or limit is None:
        m = _N_OF_M.search(status.allocation or "")
        if not m:
            return None
        left, limit = float(m.group(1)), float(m.group(2))
    if not limit or limit <= 0:
        return None
    return round(min(max(left / limit, 0.0), 1.0), 3)


def profile_card(profile: Profile, status: ProfileStatus | None = None) -> dict[str, Any]:
    """Plain data the form template shows for one profile (no HTML here)."""
    tracked = status is not None and profile.kind is not ProfileKind.cpu and status.free is not None
    none_free = tracked and status.free <= 0
    allocation_ok = status is None or status.allocation_ok
    unavailable = status.unavailable if status else ""
    # the spawner's reason (allocation exhausted, none free, Slurm down) says it best; else the facts
    reasons = [unavailable] if unavailable else [r for r in (
        _("none free on the cluster now") if none_free else "", _("your allocation is used up") if not allocation_ok else "") if r]
    language = current()
    fraction = allocation_fraction(status)
    return {
        "slug": profile.slug,
        "display_name": profile.name_in(language),
        "description": profile.description_in(language),
        "kind": profile.kind.value,
        "badge": _KIND_BADGE.get(profile.kind, profile.kind.value.upper()),
        "gpu": profile.summary,
        "cpu": _("%(guaranteed)s guaranteed, up to %(limit)s") % {
            "guaranteed": _cores(profile.cpu_guarantee), "limit": _cores(profile.cpu_limit)},
        "memory": _("%(guaranteed)s guaranteed, up to %(limit)s") % {
            "guaranteed": _memory(profile.mem_guarantee), "limit": _memory(profile.mem_limit)},
        "site": f"{profile.site} ({profile.jurisdiction})",
        "cost": cost_summary(profile.gpu_share),
        "free": _free_text(profile, status),
        "free_count": status.free if tracked else None,
        "none_free": none_free,
        "allocation": status.allocation if status else "",
        "allocation_ok": allocation_ok,
        "allocation_percent": None if fraction is None else round(fraction * 100),
        "available": allocation_ok and not none_free and not unavailable,
        "reason": "; ".join(reasons),
    }


def render_spawn_form(
    profiles: Sequence[Profile],
    selected: str | None = None,
    host_note: str = "",
    status: Mapping[str, ProfileStatus] | None = None,
) -> str:
    """HTML of the spawn form for these (already allowed) profiles: one card each.

    `selected` is the slug checked initially (else the default profile, else the
    first that can start); `host_note` is a line shown above the choices (e.g. "this
    host has no GPU"); `status` maps slugs to live availability and allocation
    (absent: not shown). A profile that cannot start now is still listed, greyed,
    with its reason, and cannot be chosen. The cards are radio buttons in a
    fieldset: keyboard-accessible, and the form works without JavaScript.
    Every value is escaped (scip_jupyter.templating: autoescape always on).
    """
    status = status or {}
    cards = [profile_card(p, status.get(p.slug)) for p in profiles]
    open_ = [c["slug"] for c in cards if c["available"]]
    if selected not in open_:
        default = default_profile(profiles)
        selected = default.slug if default and default.slug in open_ else (open_[0] if open_ else None)
    return render("spawn_form.html", profiles=cards, selected=selected, host_note=host_note)
