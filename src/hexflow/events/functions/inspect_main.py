"""``python -m hexflow.events.functions.inspect_main``: load a function in a throw-away
process and print the JSON Schema of its arguments (or the error), so that registering a
function never runs its code in the server. Reads ``{"kind", "target", "source", "name"}``
as JSON on stdin; prints ``{"schema": ...}`` or ``{"error": ..., "field": ...}``."""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    spec = json.loads(sys.stdin.read())
    field = "import_path" if spec["kind"] == "import" else "source"
    try:
        from hexflow.events.functions.runner import load_function
        from hexflow.events.functions.signature import json_schema

        fn = load_function(spec["kind"], spec["target"], spec.get("source"), spec["name"])
        out: dict[str, Any] = {"schema": json_schema(fn, spec["name"])}
    except SyntaxError as exc:
        out = {"error": f"SyntaxError: {exc.msg} (line {exc.lineno})", "field": "source"}
    except BaseException as exc:  # noqa: BLE001 - whatever it is, the caller gets it
        out = {"error": f"{type(exc).__name__}: {exc}", "field": field}
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
