"""`scip-jupyter check DIR`."""

from __future__ import annotations

import sys

from .checks import check_dir
from .i18n import _


def add_arguments(parser):
    parser.add_argument("folder", help="folder holding catalog.yaml, courses.yaml and/or arc.yaml")


def run(args) -> int:
    checked, problems = check_dir(args.folder)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(_("{problems} problem(s) in {files} file(s)").format(problems=len(problems), files=len(checked)), file=sys.stderr)
        return 1
    print(_("ok: {files}").format(files=", ".join(checked)))
    return 0
