"""Validating spawn choices (`user_options`), wherever they come from.

Options arrive from the spawn form (lists of strings), raw from the REST API
(any JSON), or from a course launch link. All go through `validate_spawn_options`,
which never trusts its input: it returns normalised options or raises
`OptionsError` naming the field and the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .catalog import Catalog, Profile


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


def options_from_form(formdata: dict[str, list[str]]) -> dict[str, Any]:
    """Parse the spawn form (no side effects, no validation)."""
    out: dict[str, Any] = {}
    for key, values in formdata.items():
        if values:
            out[key] = values[0]
    return out


def validate_spawn_options(
    options: Any, catalog: Catalog, groups: Iterable[str], extra_allowed: Iterable[str] = ()
) -> tuple[Profile, dict[str, Any]]:
    """Validate user_options against the catalog and the user's groups.

    `extra_allowed` are profile slugs granted by something other than groups
    (e.g. an active course). Returns the profile and the normalised options.
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise OptionsError("user_options", f"must be a JSON object, not {type(options).__name__}", ["{\"profile\": \"<slug>\"}"])
    groups = set(groups)
    allowed = [p for p in catalog.profiles if p.allows(groups) or p.slug in set(extra_allowed)]
    allowed_slugs = [p.slug for p in allowed]
    unknown = [k for k in options if k != "profile" and k not in EXTRA_KEYS and not k.startswith("profile-option-")]
    if unknown:
        raise OptionsError(unknown[0], "unknown option", ["profile", *EXTRA_KEYS])
    slug = options.get("profile")
    if slug is None or slug == "":
        default = next((p for p in allowed if p.default), allowed[0] if allowed else None)
        if default is None:
            raise OptionsError("profile", "your groups allow no profile", [], status=403)
        slug = default.slug
    if not isinstance(slug, str):
        raise OptionsError("profile", f"must be a string, not {type(slug).__name__}", allowed_slugs)
    profile = catalog.get(slug)
    if profile is None:
        raise OptionsError("profile", f"unknown profile {slug!r}", allowed_slugs)
    if slug not in allowed_slugs:
        raise OptionsError("profile", f"profile {slug!r} is not allowed for your groups", allowed_slugs, status=403)
    for key in options:
        if key.startswith("profile-option-"):
            raise OptionsError(key, "this catalog defines no per-profile options", [])
    normalised = {"profile": slug}
    for key in EXTRA_KEYS:
        value = options.get(key)
        if value is not None:
            if not isinstance(value, str) or len(value) > 200:
                raise OptionsError(key, "must be a string of at most 200 characters", [])
            normalised[key] = value
    return profile, normalised
