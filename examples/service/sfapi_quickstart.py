"""Drive a hexflow server with NERSC's own ``sfapi_client``, unchanged but for the URLs.

    HEXFLOW_SERVER=http://127.0.0.1:8000 python examples/service/sfapi_quickstart.py KEY.pem

KEY.pem is ``hexflow admin client create --user U --project P --json``'s client id on the
first line, then its ``private_key_pem`` (chmod 600), the key-file format sfapi_client reads.
"""

from __future__ import annotations

import os
import sys

from sfapi_client import Client


def main(key: str) -> None:
    server = os.environ.get("HEXFLOW_SERVER", "http://127.0.0.1:8000")
    with Client(
        key=key,
        api_base_url=f"{server}/api/v1.2",
        token_url=f"{server}/oauth2/token",
        wait_interval=1,
    ) as client:
        compute = client.compute("perlmutter")
        print("perlmutter is", compute.status.value)
        script = "#!/bin/bash\n#SBATCH -N 1\n#SBATCH -t 5\necho hello from $SLURM_JOB_ID\n"
        job = compute.submit_job(script)
        job.complete(timeout=120)
        print("job", job.jobid, job.state.value)
        print("command says", compute.run("echo hi").strip())
        home = compute.run("pwd").strip()  # commands run in the project's directory
        print("files:", [p.name for p in compute.ls(home)][:5])


if __name__ == "__main__":
    main(sys.argv[1])
