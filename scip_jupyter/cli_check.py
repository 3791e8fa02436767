"""`scip-jupyter check DIR`."""

from __future__ import annotations

import sys

from .checks import check_dir


def add_arguments(parser):
    parser.add_argument("folder", help="folder holding catalog.yaml, courses.yaml and/or arc.yaml")


def run(args) -> int:
    checked, problems = check_dir(args.folder)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {len(checked)} file(s)", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(checked)}")
    return 0
