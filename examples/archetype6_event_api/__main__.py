"""``python -m hexflow_examples.archetype6_event_api [WORKDIR]``: run demo 6, print the
report."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from hexflow_examples.registry import run_demo


def main(argv: list[str]) -> int:
    workdir = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="hexflow-demo6-"))
    report = run_demo(6, workdir)
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
