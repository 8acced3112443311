"""The container command lines (pure builders), the mount policy and the helper-command seam.

No runtime is needed: these check the exact argv each runtime gets, that the task's
environment never enters a shell (nor, for podman, a command line), and which mounts are
refused.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hexflow.errors import ContainerError
from hexflow.executors.containers.builders import (
    RUNTIMES,
    ContainerSetupError,
    apptainer,
    parse_inspect,
    podman,
    podman_hpc,
    shifter,
)
from hexflow.executors.containers.planning import ContainerConfig, plan
from hexflow.executors.containers.request import BindMount, ContainerRequest
from hexflow.executors.containers.tools import run_tool
from hexflow.model.container import CONTAINER_RUNTIMES

NASTY = "a b; $(rm -rf /) `id` 'q' \"dq\" \\ $HOME *"


def request(**kw: object) -> ContainerRequest:
    base: dict[str, object] = dict(
        image="localhost/python:test",
        name="hexflow-r1-t-1",
        workdir="/work/run",
        state_dir="/scratch/c/r1-t-1",
        mounts=(BindMount("/work/run", "/work/run"), BindMount("/data/in", "/in", True)),
        env={"HEXFLOW_TASK_ID": "t", "NASTY": NASTY},
    )
    base.update(kw)
    return ContainerRequest(**base)  # type: ignore[arg-type]


def option_values(argv: tuple[str, ...], option: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == option]


# ---------------------------------------------------------------- podman
def test_podman_line() -> None:
    line = podman(request(cpus=1.5, memory=64 * 2**20))
    argv = line.argv
    assert argv[:2] == ("podman", "run")
    for flag in ("--rm", "--replace", "--pull=never", "--network=none", "--init"):
        assert flag in argv
    assert "--log-driver=passthrough" in argv  # the container writes to the task's logs
    assert option_values(argv, "--name") == ["hexflow-r1-t-1"]
    assert option_values(argv, "--cpus") == ["1.5"]
    assert option_values(argv, "--memory") == [str(64 * 2**20)]
    assert option_values(argv, "--memory-swap") == [str(64 * 2**20)]  # no swap: OOM is OOM
    assert option_values(argv, "--volume") == ["/work/run:/work/run:rw", "/data/in:/in:ro"]
    assert option_values(argv, "--workdir") == ["/work/run"]
    assert argv[-1] == "localhost/python:test"  # the command follows the image
    assert line.wrap(["echo", "hi"])[-3:] == ["localhost/python:test", "echo", "hi"]


def test_podman_env_goes_in_a_private_file_never_on_the_command_line() -> None:
    line = podman(request())
    assert not any(NASTY in a for a in line.argv)
    assert option_values(line.argv, "--env-file") == ["/scratch/c/r1-t-1/env"]
    assert line.files["env"] == f"HEXFLOW_TASK_ID=t\nNASTY={NASTY}\n"
    assert line.env == {}


def test_podman_passes_values_a_file_cannot_hold_through_its_environment() -> None:
    line = podman(request(env={"MULTI": "one\ntwo", "CR": "x\r"}))
    assert option_values(line.argv, "--env") == ["MULTI", "CR"]  # names only
    assert line.env == {"MULTI": "one\ntwo", "CR": "x\r"}
    assert "--env-file" not in line.argv


def test_podman_without_limits_env_or_init() -> None:
    argv = podman(request(env={}, init=False, network="host")).argv
    for flag in ("--cpus", "--memory", "--env-file", "--env", "--init", "--device"):
        assert flag not in argv
    assert "--network=host" in argv


def test_podman_gpus_by_cdi_renumbered_inside() -> None:
    line = podman(request(gpu_ids=(2, 3)))
    assert option_values(line.argv, "--device") == ["nvidia.com/gpu=2", "nvidia.com/gpu=3"]
    assert "CUDA_VISIBLE_DEVICES=0,1\n" in line.files["env"]


def test_podman_hpc_line() -> None:
    line = podman_hpc(request(gpu_ids=(1,), cpus=2, memory=2**30))
    assert line.argv[:2] == ("podman-hpc", "run")
    assert "--gpu" in line.argv and "--device" not in line.argv
    assert "CUDA_VISIBLE_DEVICES=1\n" in line.files["env"]
    assert option_values(line.argv, "--cpus") == ["2"]


# ---------------------------------------------------------------- apptainer
def test_apptainer_line() -> None:
    line = apptainer(request(image="/images/app.sif", cpus=0.5, memory=2**30, gpu_ids=(0, 3)))
    argv = line.argv
    assert argv[:4] == ("apptainer", "exec", "--cleanenv", "--contain")
    assert argv[4:7] == ("--net", "--network", "none")
    assert option_values(argv, "--bind") == ["/work/run:/work/run:rw", "/data/in:/in:ro"]
    assert option_values(argv, "--pwd") == ["/work/run"]
    assert option_values(argv, "--cpus") == ["0.5"]
    assert option_values(argv, "--memory") == [str(2**30)]
    assert "--nv" in argv
    assert argv[-1] == "/images/app.sif"
    # the environment goes through APPTAINERENV_*, which apptainer sets without a shell
    assert line.env["APPTAINERENV_NASTY"] == NASTY
    assert line.env["APPTAINERENV_CUDA_VISIBLE_DEVICES"] == "0,3"
    assert not any(NASTY in a for a in argv)


def test_apptainer_runs_oci_references_from_docker_uris_and_host_network() -> None:
    argv = apptainer(request(network="host", env={})).argv
    assert argv[-1] == "docker://localhost/python:test"
    assert "--net" not in argv and "--nv" not in argv


# ---------------------------------------------------------------- shifter
def test_shifter_line() -> None:
    line = shifter(request(network="host", gpu_ids=(1,)))
    assert line.argv == (
        "shifter",
        "--image=docker:localhost/python:test",
        "--module=gpu",
        "--volume=/work/run:/work/run",
        "--volume=/data/in:/in:ro",
        "--workdir=/work/run",
        "--",
    )
    assert line.env["NASTY"] == NASTY and line.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert line.wrap(["python3", "x.py"])[-3:] == ["--", "python3", "x.py"]


def test_shifter_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ContainerSetupError, match="without network"):
        shifter(request(network="none"))
    with pytest.raises(ContainerSetupError, match="not files"):
        shifter(request(network="host", image="/images/app.sif"))


# ---------------------------------------------------------------- helper commands
def test_every_runtime_of_the_settings_has_a_builder() -> None:
    assert set(RUNTIMES) == set(CONTAINER_RUNTIMES)
    for name, runtime in RUNTIMES.items():
        line = runtime.build(request(network=runtime.network_default))
        assert line.argv, name


def test_helper_command_lines_and_inspect_output() -> None:
    podman_rt = RUNTIMES["podman"]
    assert podman_rt.inspect is not None and podman_rt.remove is not None
    assert podman_rt.inspect("localhost/x:1") == [
        "podman", "image", "inspect", "--format", "{{.Id}} {{.Digest}}", "localhost/x:1"
    ]  # fmt: skip
    assert podman_rt.remove("n") == ["podman", "rm", "--force", "--ignore", "--time", "0", "n"]
    shifter_rt = RUNTIMES["shifter"]
    assert shifter_rt.inspect is not None and shifter_rt.inspect("ubuntu:22.04") == [
        "shifterimg", "lookup", "docker:ubuntu:22.04"
    ]  # fmt: skip
    assert RUNTIMES["apptainer"].remove is None  # nothing outlives a killed apptainer
    assert parse_inspect("abc123 sha256:def\n") == ("abc123", "sha256:def")
    assert parse_inspect("abc123 <none>") == ("abc123", None)
    assert parse_inspect("0123abcd") == ("0123abcd", None)
    with pytest.raises(ContainerSetupError):
        parse_inspect("  \n")


def test_run_tool_is_an_argument_list_with_bounded_time(tmp_path: Path) -> None:
    done = run_tool([sys.executable, "-c", "import sys; print('x'); sys.exit(3)"])
    assert (done.returncode, done.stdout.strip()) == (3, "x")
    assert run_tool(["/nonexistent/podman", "ps"]).returncode == 127
    slow = run_tool([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert slow.returncode == 124 and "did not answer" in slow.message
    said = run_tool([sys.executable, "-c", "import sys; sys.stderr.write('a\\nlast words\\n')"])
    assert said.message == "last words"
    marker = tmp_path / "never"
    run_tool(["echo", f"; touch {marker}"])  # no shell reads it
    assert not marker.exists()


# ---------------------------------------------------------------- planning (mount policy)
@pytest.fixture
def site(tmp_path: Path) -> dict[str, Path]:
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "sub").mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (run / "escape").symlink_to(outside)
    return {"run": run, "outside": outside, "home": tmp_path / "home"}


def planned(site: dict[str, Path], mounts: list[str], **kw: object) -> ContainerRequest:
    config = kw.pop("config", ContainerConfig())
    base: dict[str, object] = dict(
        task="t",
        image="localhost/base:test",
        name="n",
        workdir=str(site["run"]),
        cwd=str(site["run"]),
        state_dir=str(site["home"] / "state"),
        mounts=mounts,
    )
    base.update(kw)
    return plan(config, **base)  # type: ignore[arg-type, arg-type]


def test_plan_mounts_the_run_directory_and_resolves_user_mounts(site: dict[str, Path]) -> None:
    req = planned(site, ["data:/data:ro"], cpus=64.0, memory=2**27)
    run = str(site["run"].resolve())
    assert req.mounts == (BindMount(run, run), BindMount(f"{run}/data", "/data", True))
    assert req.workdir == run and req.network == "none"
    assert req.cpus == float(os.cpu_count() or 1)  # no more than the machine has
    assert planned(site, [], cpus=0.001).cpus == 0.01  # podman's smallest
    assert req.memory == 2**27


def test_plan_relative_mounts_start_at_the_task_directory(site: dict[str, Path]) -> None:
    req = planned(site, ["../data:/d"], cwd=str(site["run"] / "sub"))
    assert BindMount(str(site["run"].resolve() / "data"), "/d") in req.mounts
    assert req.workdir == str(site["run"].resolve() / "sub")


@pytest.mark.parametrize("mount", ["/etc:/host-etc:ro", "escape:/x", "../elsewhere:/x"])
def test_plan_refuses_mounts_outside_the_allowed_roots(site: dict[str, Path], mount: str) -> None:
    with pytest.raises(ContainerError) as info:
        planned(site, [mount])
    text = str(info.value)
    assert "outside the directories container tasks may mount" in text
    assert "HEXFLOW_MOUNT_ROOTS" in text
    assert info.value.fields == {"task": "t", "field": "mounts"}


def test_plan_allows_what_the_site_allows(site: dict[str, Path]) -> None:
    config = ContainerConfig(mount_roots=(str(site["run"]), str(site["outside"])))
    req = planned(site, ["escape:/x:ro"], config=config)
    assert BindMount(str(site["outside"].resolve()), "/x", True) in req.mounts


def test_plan_refuses_missing_sources_and_unmountable_paths(
    site: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(ContainerError, match="does not exist"):
        planned(site, ["nothing-here:/x"])
    odd = site["run"] / "a,b"
    odd.mkdir()
    with pytest.raises(ContainerError, match="holds ':' or ','"):
        planned(site, [], workdir=str(odd), cwd=str(odd))


def test_plan_mounts_a_checkpoint_dir_and_a_cwd_outside_the_run(site: dict[str, Path]) -> None:
    ckpt = site["home"] / "ckpt"
    ckpt.mkdir(parents=True)
    config = ContainerConfig(mount_roots=(str(site["run"]), str(site["outside"])))
    req = planned(
        site,
        [],
        config=config,
        cwd=str(site["outside"]),
        env={"HEXFLOW_CHECKPOINT_DIR": str(ckpt)},
    )
    targets = {m.target for m in req.mounts}
    assert {str(site["outside"].resolve()), str(ckpt)} <= targets
    with pytest.raises(ContainerError, match="its working directory"):
        planned(site, [], cwd=str(site["outside"]))  # not an allowed root by default


def test_container_config_refuses_unknown_runtimes() -> None:
    with pytest.raises(ContainerError, match="unknown container runtime 'docker'"):
        ContainerConfig(runtime="docker")
    assert ContainerConfig(runtime="shifter").runtime == "shifter"
