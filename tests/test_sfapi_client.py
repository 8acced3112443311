"""The SFAPI v1.2 facade driven by the real, unmodified ``sfapi_client`` (PyPI) against a
running ``hexflow server``: the OAuth token flow with a key from ``hexflow admin client
create``, status and outages, batch jobs (by path and by text, ``#SBATCH --output`` with
``%j``), waiting, listing, cancelling, commands, and the file utilities (ls, upload,
download), confined to the project's directory."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from tests.remote_env import Live, live_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Authlib's deprecation notice about httpx
    from sfapi_client import Client, SfApiError
    from sfapi_client.compute import Machine
    from sfapi_client.jobs import JobState

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("sfapi")
    now = time.time()
    outages = [
        {"site": "local", "start": now - 7200, "end": now - 3600, "description": "past upgrade"},
        {"site": "local", "start": now + 86400, "end": now + 90000, "description": "OS upgrade"},
    ]
    (tmp / "outages.json").write_text(json.dumps(outages))
    yield from live_server(tmp, "--outages", str(tmp / "outages.json"))


def _client(live: Live) -> Client:
    key = live.client_key
    return Client(
        key["client_id"],
        key["private_key_pem"],
        api_base_url=live.url + "/api/v1.2",
        token_url=live.url + "/oauth2/token",
        wait_interval=1,
    )


def test_token_flow_status_and_outages(live: Live) -> None:
    with _client(live) as client:
        assert client.token.count(".") == 2  # a signed JWT access token
        compute = client.compute(Machine.perlmutter)
        assert compute.name == "perlmutter" and compute.status.value == "active"
        assert [o.name for o in client.resources.outages("perlmutter")] == ["perlmutter"]
        planned = client.resources.planned_outages("perlmutter")
        assert [o.description for o in planned] == ["OS upgrade"]
        assert client.api.config()["compute.targets"] == "perlmutter"
        assert client.user().name == "alice"
        assert [p.repo_name for p in client.user().projects()] == ["p1"]
    with Client(api_base_url=live.url + "/api/v1.2") as anonymous:  # public: no token
        assert anonymous.compute("perlmutter").status.value == "active"


def test_batch_jobs_by_path_and_text_with_output_files(live: Live) -> None:
    home = live.project_dir("p1")
    with _client(live) as client:
        compute = client.compute("perlmutter")
        [root] = compute.ls(str(home), directory=True)
        script = BytesIO(b"#!/bin/bash\n#SBATCH -N 1\n#SBATCH -t 5\n#SBATCH -o out-%j.txt\n"
                         b"echo job $SLURM_JOB_ID args $@\necho oops >&2\n")  # fmt: skip
        script.filename = "job.sh"  # type: ignore[attr-defined]
        uploaded = root.upload(script)
        job = compute.submit_job(uploaded, args=["a", "b"])
        assert job.jobid
        job.complete(timeout=60)
        assert job.state is JobState.COMPLETED
        output = (home / f"out-{job.jobid}.txt").read_text()
        assert output == f"job {job.jobid} args a b\noops\n"

        text = "#!/bin/bash\n#SBATCH -q debug\n#SBATCH -J texty\necho from text\n"
        second = compute.submit_job(text)
        second.complete(timeout=60)
        assert second.state is JobState.COMPLETED
        assert (home / f"slurm-{second.jobid}.out").read_text() == "from text\n"
        listed = compute.job(jobid=second.jobid)
        assert listed.jobid == second.jobid and listed.jobname == "texty"
        assert {j.jobid for j in compute.jobs(command="sacct")} >= {job.jobid, second.jobid}


def test_cancel_a_running_job(live: Live) -> None:
    with _client(live) as client:
        compute = client.compute("perlmutter")
        job = compute.submit_job("#!/bin/bash\n#SBATCH -N 1\nsleep 60\n")
        job.running()
        assert job.jobid in {j.jobid for j in compute.jobs()}  # squeue view
        job.cancel(wait=True)
        assert job.state is JobState.CANCELLED
        assert job.jobid not in {j.jobid for j in compute.jobs()}
        assert compute.job(jobid=job.jobid).state is JobState.CANCELLED  # sacct view


def test_a_bad_script_is_an_sfapi_error(live: Live) -> None:
    with _client(live) as client:
        compute = client.compute("perlmutter")
        with pytest.raises(SfApiError, match="qos"):
            compute.submit_job("#!/bin/bash\n#SBATCH -q platinum\necho x\n")
        with pytest.raises(SfApiError, match="unsupported option --array"):
            compute.submit_job("#!/bin/bash\n#SBATCH --array=1-4\necho x\n")
        with pytest.raises(SfApiError, match="Invalid account"):
            compute.submit_job("#!/bin/bash\n#SBATCH -A p2\necho x\n")


def test_commands(live: Live) -> None:
    with _client(live) as client:
        compute = client.compute("perlmutter")
        assert compute.run("echo hello") == "hello\n"
        assert compute.run("echo $((6 * 7))") == "42\n"
        with pytest.raises(SfApiError, match="failing"):
            compute.run("bash -lc 'echo failing >&2; exit 1'")
        task = compute.run_task("sleep 30")
        task.cancel()
        deadline = time.monotonic() + 30
        while task.status is None or task.status.name != "CANCELLED":
            assert time.monotonic() < deadline, task.status
            time.sleep(0.5)
            task.update()


def test_files_upload_download_and_confinement(live: Live, tmp_path: Path) -> None:
    home = live.project_dir("p1")
    (home / "data").mkdir(exist_ok=True)
    (home / "data" / "blob.bin").write_bytes(bytes(range(256)))
    with _client(live) as client:
        compute = client.compute("perlmutter")
        [data] = compute.ls(str(home / "data"), directory=True)
        assert data.is_dir()
        names = [p.name for p in compute.ls(str(home / "data"))]
        assert names == ["blob.bin"]
        [blob] = compute.ls(str(home / "data" / "blob.bin"))
        assert blob.is_file() and blob.size == 256
        assert blob.download(binary=True).read() == bytes(range(256))
        with (data / "notes.txt").open("w") as f:  # a new file: ls says no such file first
            f.write("hello\n")
        assert (home / "data" / "notes.txt").read_text() == "hello\n"
        with (data / "notes.txt").open("r") as f:
            assert f.read() == "hello\n"
        (home / "data" / "escape").symlink_to("/etc")
        for outside in ("/etc", f"{home}/../p2", f"{home}/data/escape/passwd"):
            with pytest.raises(SfApiError, match="outside"):
                compute.ls(outside)
        [link] = compute.ls(f"{home}/data/escape")  # the link itself may be listed
        assert link.is_symlink()
        with pytest.raises(SfApiError, match="No such file"):
            compute.ls(f"{home}/nothing-here")


def test_api_token_and_other_projects(live: Live) -> None:
    base = live.url + "/api/v1.2"
    with Client(api_base_url=base, access_token=live.tokens["alice"]) as alice:
        compute = alice.compute("perlmutter")
        job = compute.submit_job("#!/bin/bash\necho mine\n")
        job.complete(timeout=60)
    with Client(api_base_url=base, access_token=live.tokens["bob"]) as bob:
        compute = bob.compute("perlmutter")
        with pytest.raises(SfApiError, match="Job not found"):
            compute.job(jobid=job.jobid)
        assert job.jobid not in {j.jobid for j in compute.jobs(command="sacct")}
        with pytest.raises(SfApiError, match="outside"):
            compute.ls(str(live.project_dir("p1")))
    with Client(api_base_url=base, access_token=live.tokens["carol"]) as carol:  # a viewer
        compute = carol.compute("perlmutter")
        assert compute.job(jobid=job.jobid).state is JobState.COMPLETED
        import httpx

        with pytest.raises(httpx.HTTPStatusError) as refused:
            compute.submit_job("#!/bin/bash\necho no\n")
        assert refused.value.response.status_code == 403


def test_the_sfapi_example_runs(live: Live, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    key = tmp_path / "hexflow.pem"  # sfapi_client's key-file format, mode 600
    key.write_text(live.client_key["client_id"] + "\n" + live.client_key["private_key_pem"])
    key.chmod(0o600)
    example = Path(__file__).parent.parent / "examples" / "service" / "sfapi_quickstart.py"
    done = subprocess.run(
        [sys.executable, str(example), str(key)],
        env={**os.environ, "HEXFLOW_SERVER": live.url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "perlmutter is active" in done.stdout and "COMPLETED" in done.stdout
    assert "command says hi" in done.stdout
