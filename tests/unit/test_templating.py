"""Every jinja2 environment of the project comes from scip_jupyter.templating and escapes."""

from __future__ import annotations

import inspect

import jinja2
import pytest

from scip_jupyter.templating import environment, render
from scip_widgets import _base

SCRIPT = "<script>alert('x')</script>"


def test_autoescape_cannot_be_turned_off():
    assert "autoescape" not in inspect.signature(environment).parameters
    assert environment(jinja2.DictLoader({})).autoescape is True


@pytest.mark.parametrize(
    "html",
    [
        lambda: render("course_index.html", courses=[], user=SCRIPT, prefix="/"),
        lambda: _base.render("message.html", c=SCRIPT, t=SCRIPT),
        lambda: _base.render("course_title.html", t=SCRIPT, c=SCRIPT),
        lambda: environment(jinja2.DictLoader({"t": "{{ x }}"}), strict=False).get_template("t").render(x=SCRIPT),
    ],
    ids=["package-file", "widget-message", "widget-course-title", "string-template"],
)
def test_rendered_values_are_escaped(html):
    page = html()
    assert SCRIPT not in page and "&lt;script&gt;" in page


def test_strict_environment_refuses_a_missing_value():
    with pytest.raises(jinja2.UndefinedError):
        environment(jinja2.DictLoader({"t": "{{ x }}"})).get_template("t").render()
