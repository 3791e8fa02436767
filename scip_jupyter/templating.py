"""Generated HTML: the one way this project makes a jinja2 environment, autoescape always on.

Every value put into a template is data (profile names, course titles, job
reasons, usernames), so escaping is not a choice a caller can turn off: there is
no `autoescape` argument. `render` draws on the files in scip_jupyter/templates
(the spawn form, the instructor pages); the notebook widgets keep their
templates as strings (widgets/templates.py) and make their environment with
`environment(DictLoader(...))`.

Every environment made here translates: `{% trans %}...{% endtrans %}` and
`_()` in a template follow the current language (scip_jupyter.i18n: a hub
request's choice or Accept-Language, a kernel's or command's environment).

>>> environment(jinja2.DictLoader({"t.html": "<b>{{ x }}</b>"})).get_template("t.html").render(x="<script>")
'<b>&lt;script&gt;</b>'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from .i18n import current, install_jinja

#: The package's template files.
TEMPLATES = Path(__file__).parent / "templates"


def environment(
    loader: jinja2.BaseLoader, *, strict: bool = True, keep_trailing_newline: bool = False
) -> jinja2.Environment:
    """An autoescaping environment over `loader`, blocks trimmed.

    `strict` makes a missing value an error (StrictUndefined) rather than empty text;
    `keep_trailing_newline` keeps the newline a template file ends with.
    """
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=keep_trailing_newline,
    )
    install_jinja(env)
    env.globals["current_language"] = current
    return env


@lru_cache(maxsize=1)
def _files() -> jinja2.Environment:
    return environment(jinja2.FileSystemLoader(str(TEMPLATES)), keep_trailing_newline=True)


def render(name: str, /, **context: Any) -> str:
    """Render scip_jupyter/templates/`name` with `context`, every value escaped.

    >>> "&lt;x&gt;" in render("course_index.html", courses=[], user="<x>", prefix="/")
    True
    """
    return _files().get_template(name).render(**context)
