"""Every message id in the source, as Babel's extractors see them (shared by the i18n tests).

Python `_()`, `gettext()`, `ngettext()` calls in scip_jupyter/, widgets/ and hub_config/, and
`{% trans %}` / `_()` in the jinja templates (files under */templates/ and the
widgets' template strings in widgets/templates.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from babel.messages.extract import extract, extract_from_dir

ROOT = Path(__file__).resolve().parents[1]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
JINJA = "jinja2.ext:babel_extract"
JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true", "trimmed": "false"}


@dataclass(frozen=True)
class Message:
    id: str
    plural: str
    where: str  # file:line


def _from_dir(folder: Path) -> list[Message]:
    method_map = [("**/templates/**.html", JINJA), ("**.py", "python")]
    options = {"**/templates/**.html": JINJA_OPTIONS}
    out = []
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(folder), method_map, options, keywords=KEYWORDS, strip_comment_tags=True
    ):
        ids = message if isinstance(message, tuple) else (message,)
        if ids and ids[0]:
            out.append(Message(ids[0], ids[1] if len(ids) > 1 else "", f"{folder.name}/{filename}:{lineno}"))
    return out


def _widget_templates() -> list[Message]:
    from scip_widgets import templates

    out = []
    for name, source in templates.TEMPLATES.items():
        for lineno, message, _comments, _context in extract(
            JINJA, io.BytesIO(source.encode()), keywords=KEYWORDS, options=JINJA_OPTIONS
        ):
            ids = message if isinstance(message, tuple) else (message,)
            if ids and ids[0]:
                out.append(Message(ids[0], ids[1] if len(ids) > 1 else "", f"widgets/templates.py:{name}:{lineno}"))
    return out


def source_messages() -> list[Message]:
    return (
        _from_dir(ROOT / "scip_jupyter") + _from_dir(ROOT / "widgets") + _from_dir(ROOT / "hub_config")
        + _widget_templates()
    )
