"""Generate values.schema.json from the chart's values.schema.yaml (the contract).

    .venv/bin/python helm/gen_schema.py          # write
    .venv/bin/python helm/gen_schema.py --check  # exit 1 if out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent / "scip-jupyter"


def render() -> str:
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    return json.dumps(schema, indent=2, sort_keys=False) + "\n"


def main(argv: list[str]) -> int:
    target = CHART / "values.schema.json"
    text = render()
    if "--check" in argv:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is out of date: run python helm/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
