"""The sbatch script builder (pure): resources to options, arrays, quoting, refusals."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexflow.errors import ExecutorError
from hexflow.executors.slurm.script import (
    JobRequest,
    directives,
    format_minutes,
    job_name,
    render,
    request_for,
)
from hexflow.model import Resources


def test_resources_map_to_sbatch_options() -> None:
    req = request_for(
        Resources.parse(cpus=2.5, memory="1.5G", gpus=2, walltime="90s"),
        name="hx-train model",
        time_limit=90.0,
        partition="gpu",
        qos="regular",
        account="m1234",
    )
    assert directives(req) == [
        "--job-name=hx-train_model",
        "--nodes=1",
        "--ntasks=1",
        "--cpus-per-task=3",  # whole cpus, rounded up
        "--gpus=2",
        "--mem=1536M",
        "--time=00:02:00",  # whole minutes, rounded up
        "--partition=gpu",
        "--qos=regular",
        "--account=m1234",
        "--no-requeue",
    ]


def test_several_nodes_ask_per_node() -> None:
    req = request_for(Resources(cpus=64, gpus=4, nodes=8, memory=2**30), name="wide")
    assert directives(req) == [
        "--job-name=wide",
        "--nodes=8",
        "--ntasks-per-node=1",
        "--cpus-per-task=64",
        "--gpus-per-node=4",
        "--mem=1024M",
        "--no-requeue",
    ]


def test_tags_override_the_allowed_options_only() -> None:
    req = request_for(
        Resources(),
        name="t",
        partition="regular",
        tags={"slurm.partition": "debug", "slurm.constraint": "gpu&hbm80g", "stage": "x"},
    )
    assert (req.partition, req.constraint) == ("debug", "gpu&hbm80g")
    with pytest.raises(ExecutorError, match="--exclusive"):
        request_for(Resources(), name="t", tags={"slurm.exclusive": "yes"})


def test_time_formats() -> None:
    assert format_minutes(1) == "00:01:00"
    assert format_minutes(90) == "01:30:00"
    assert format_minutes(24 * 60 + 5) == "1-00:05:00"
    assert request_for(Resources(), name="x", time_limit=1.0).time_minutes == 1
    assert request_for(Resources(), name="x", time_limit=3600.0).time_minutes == 60
    assert request_for(Resources(), name="x").time_minutes is None


def test_a_job_array_script(tmp_path: Path) -> None:
    req = JobRequest(
        name="hx-run", array_size=3, output=str(tmp_path / "a.%a.slurm"), chdir=str(tmp_path)
    )
    script = render(req, ["echo", "job:"], ["/x/a b.job", "/x/c.job", "/x/d'e.job"])
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert "#SBATCH --array=0-2" in lines
    assert f"#SBATCH --output={tmp_path}/a.%a.slurm" in lines
    assert "#SBATCH --open-mode=append" in lines
    for index, expected in enumerate(["/x/a b.job", "/x/c.job", "/x/d'e.job"]):
        out = subprocess.run(
            ["bash", "-c", script],
            env={"SLURM_ARRAY_TASK_ID": str(index), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout == f"job: {expected}\n"
    with pytest.raises(ExecutorError, match="one job argument per element"):
        render(req, ["echo"], ["/x/a.job"])


@settings(max_examples=50, deadline=None)
@given(
    value=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
    ),
    word=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
    ),
)
def test_env_and_command_words_reach_the_job_unchanged(value: str, word: str) -> None:
    """Whatever the text, the script exports it and passes it as one word: no injection."""
    req = JobRequest(name="q", env={"HX_VALUE": value})
    script = render(
        req,
        [
            "python3",
            "-c",
            "import os, sys; print(repr((os.environ['HX_VALUE'], sys.argv[1])))",
            word,
        ],
    )
    out = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == repr((value, word))


@pytest.mark.parametrize(
    "field,value",
    [
        ("partition", "regular --wrap=evil"),
        ("account", "m1;rm -rf /"),
        ("qos", "x\n#SBATCH --uid=0"),
        ("output", "/tmp/a b.out"),
        ("constraint", "$(id)"),
        ("name", "ok"),  # names are made safe, not refused
    ],
)
def test_unsafe_directive_values_are_refused(field: str, value: str) -> None:
    req = replace(JobRequest(name="x"), **{field: value})
    if field == "name":
        assert directives(req)[0] == "--job-name=ok"
        return
    with pytest.raises(ExecutorError, match=f"refusing --{field}"):
        directives(req)


def test_job_names_and_env_names() -> None:
    assert job_name("hx-a b/c;d") == "hx-a_b_c_d"
    assert job_name("") == "hexflow"
    assert len(job_name("x" * 500)) == 64
    with pytest.raises(ExecutorError, match="not a shell variable name"):
        render(JobRequest(name="x", env={"BAD-NAME": "1"}), ["true"])
    with pytest.raises(ExecutorError, match="NUL"):
        render(JobRequest(name="x", env={"A": "a\0b"}), ["true"])


# ---------------------------------------------------------------- container tasks
# A task with ``image=`` gets the site's runtime line in its batch script (issue 8).
_FAKE_RUNTIME = """#!/usr/bin/env python3
import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "env": {k: v for k, v in os.environ.items()
      if k.startswith(("APPTAINERENV_", "HX_", "TOKEN"))}}))
"""


def _container_request(tmp_path: Path, env: dict[str, str]) -> object:
    from hexflow.executors.containers.request import BindMount, ContainerRequest

    return ContainerRequest(
        image="localhost/python:test",
        name="hexflow-r1-t1-1",
        workdir=str(tmp_path),
        state_dir=str(tmp_path / "state"),
        mounts=(BindMount(str(tmp_path), str(tmp_path)), BindMount("/data", "/in", True)),
        env=env,
        cpus=2,
        memory=2**30,
        network="host",
    )


def _run_script(script: str, tmp_path: Path, runtime: str) -> dict[str, object]:
    import json
    import os

    fakes = tmp_path / "bin"
    fakes.mkdir(exist_ok=True)
    fake = fakes / runtime
    fake.write_text(_FAKE_RUNTIME)
    fake.chmod(0o755)
    (tmp_path / "state").mkdir(exist_ok=True)
    out = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": f"{fakes}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")},
    )
    return dict(json.loads(out.stdout))


EVIL = "a b; $(touch /tmp/hexflow-pwned) `id` 'q' \"dq\" \\ *"


@pytest.mark.parametrize("runtime", ["podman", "podman-hpc", "apptainer", "shifter"])
def test_a_container_task_runs_its_runtime_line_in_the_script(runtime: str, tmp_path: Path) -> None:
    from hexflow.executors.containers.builders import RUNTIMES

    request = _container_request(tmp_path, {"TOKEN": EVIL})
    container = RUNTIMES[runtime].build(request)  # type: ignore[arg-type]
    req = request_for(Resources.parse(cpus=2, memory="1G"), name="hx-boxed")
    script = render(
        req,
        ["python3", "-c", "print(1)", EVIL],
        container=container,
        state_dir=str(tmp_path / "state"),
    )
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[-1].startswith(f"exec {runtime} ")
    assert "#SBATCH --cpus-per-task=2" in lines and "#SBATCH --mem=1024M" in lines
    seen = _run_script(script, tmp_path, runtime)
    argv = seen["argv"]
    assert isinstance(argv, list)
    assert argv == [*container.argv[1:], "python3", "-c", "print(1)", EVIL]
    assert not Path("/tmp/hexflow-pwned").exists()
    env = seen["env"]
    assert isinstance(env, dict)
    if runtime == "apptainer":  # the task's environment through APPTAINERENV_*
        assert env["APPTAINERENV_TOKEN"] == EVIL
        assert argv[-5] == "docker://localhost/python:test"
    elif runtime == "shifter":  # shifter keeps the caller's environment
        assert env["TOKEN"] == EVIL
    else:  # podman: an env file, mode 0600, never the command line
        env_file = tmp_path / "state" / "env"
        assert env_file.read_text() == f"TOKEN={EVIL}\n"
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert "--pull=never" in argv and EVIL not in " ".join(argv[:-1])


def test_a_container_array_script_appends_each_job(tmp_path: Path) -> None:
    from hexflow.executors.containers.builders import apptainer

    container = apptainer(_container_request(tmp_path, {}))  # type: ignore[arg-type]
    req = JobRequest(name="hx-arr", array_size=2)
    script = render(req, ["runner"], ["/x/a b.job", "/x/c.job"], container=container)
    assert script.splitlines()[-1].endswith('runner "${JOBS[$SLURM_ARRAY_TASK_ID]}"')
    assert script.splitlines()[-1].startswith("exec apptainer exec --cleanenv")


def test_container_files_need_a_state_dir_and_plain_names(tmp_path: Path) -> None:
    from hexflow.executors.containers.request import ContainerCommand

    with pytest.raises(ExecutorError, match="state directory"):
        render(
            JobRequest(name="x"),
            ["true"],
            container=ContainerCommand(("podman",), files={"env": "A=1\n"}),
        )
    bad = ContainerCommand(("podman",), files={"../evil": "x"})
    with pytest.raises(ExecutorError, match="file name"):
        render(JobRequest(name="x"), ["true"], container=bad, state_dir=str(tmp_path))
    with pytest.raises(ExecutorError, match="not a shell variable name"):
        render(JobRequest(name="x"), ["true"], container=ContainerCommand(("a",), env={"A B": "1"}))
