"""Submit a Python workflow and a YAML workflow to a hexflow server with the SDK.

    HEXFLOW_SERVER=http://127.0.0.1:8000 HEXFLOW_TOKEN_FILE=~/.config/hexflow/token \
        python examples/service/sdk_quickstart.py

The token file holds an API token from ``hexflow admin token create`` (chmod 600).
"""

from __future__ import annotations

import os
from pathlib import Path

import hexflow as hx
from hexflow.client.config import default_token_file, load_token


@hx.task(cpus=1)
def square(x: int) -> int:
    return x * x


@hx.task
def total(values: list[int]) -> int:
    return sum(values)


def main() -> None:
    server = os.environ.get("HEXFLOW_SERVER", "http://127.0.0.1:8000")
    token = load_token(default_token_file())
    with hx.Client(server, token) as client:
        with hx.Workflow("squares") as wf:
            result = total([square(i) for i in range(10)])
        run = wf.submit(client)  # the same Workflow code as embedded mode
        print("run", run.id, "sum of squares:", result.result(timeout=120))

        pipeline = Path(__file__).parent.parent / "workflows" / "pipeline.yaml"
        yaml_run = client.submit(pipeline, params={"steps": "3"}).wait(timeout=300)
        print("run", yaml_run.id, yaml_run.state, yaml_run.info["tasks"])
        for event in client.events(yaml_run.id):  # a finished run: snapshot, then end
            if event.event == "end":
                print("events end with", event.data["state"])
        print("sites:", [(s["name"], s["state"]) for s in client.sites()])


if __name__ == "__main__":
    main()
