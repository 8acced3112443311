"""The external "experiment" of demo 6: it measures shots and posts each to a hexflow
webhook as a signed JSON event. It knows only the hook's URL and secret — no hexflow
account, no token — and runs as its own process::

    python -m hexflow_examples.archetype6_event_api.experiment \\
        --url http://127.0.0.1:8000/api/v1/hooks/ID --secret-file hook.secret \\
        --energies 40,150,600,2500 --interval 0.2 --out sent.json

Besides the shots (and any ``--bad`` energies, which the function refuses), it checks the
gateway's guard: the first request sent again (a replay) and an unsigned request must both
be refused (401). It writes what it sent and what the server answered to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import stat
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from hexflow.client import signed_headers


def energies(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one energy")
    return values


def read_secret(path: Path) -> str:
    st = path.stat()
    if st.st_mode & 0o077:
        raise PermissionError(
            f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}): chmod 600 it"
        )
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty")
    return secret


def post(http: httpx.Client, url: str, secret: str, shot: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(shot).encode()
    headers = {"Content-Type": "application/json", **signed_headers(secret, body)}
    sent_at = time.time()
    answer = http.post(url, content=body, headers=headers)
    return {
        "shot": shot,
        "status": answer.status_code,
        "seq": answer.json().get("seq") if answer.status_code == 202 else None,
        "sent_at": sent_at,
        "headers": headers,
        "body": body.decode(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="experiment", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the webhook's full URL")
    parser.add_argument("--secret-file", type=Path, required=True)
    parser.add_argument("--energies", type=energies, default=[40.0, 150.0, 600.0, 2500.0])
    parser.add_argument("--bad", type=energies, default=[], help="energies too low to shower")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between shots")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://", "https://")) or "/api/v1/hooks/" not in args.url:
        parser.error(f"--url: not a hexflow webhook URL: {args.url!r}")
    if not 0 <= args.interval <= 60:
        parser.error("--interval: between 0 and 60 seconds")
    try:
        secret = read_secret(args.secret_file)
    except (OSError, ValueError) as exc:
        parser.error(f"--secret-file: {exc}")

    shots = [{"shot": i + 1, "energy": e} for i, e in enumerate(args.energies)]
    shots += [{"shot": 900 + i, "energy": e} for i, e in enumerate(args.bad)]
    sent: list[dict[str, Any]] = []
    try:
        with httpx.Client(timeout=30) as http:
            for shot in shots:
                sent.append(post(http, args.url, secret, shot))
                time.sleep(args.interval)
            first = sent[0]
            replay = http.post(
                args.url, content=first["body"].encode(),
                headers={"Content-Type": "application/json", **first["headers"]},
            )  # fmt: skip
            unsigned = http.post(args.url, json={"shot": 0, "energy": 100.0})
    except httpx.HTTPError as exc:
        print(f"experiment: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 3
    report = {
        "sent": [{k: v for k, v in s.items() if k not in ("headers", "body")} for s in sent],
        "replay_status": replay.status_code,
        "unsigned_status": unsigned.status_code,
    }
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({"shots": len(sent), "accepted": sum(s["status"] == 202 for s in sent)}))
    return 0 if all(s["status"] == 202 for s in sent) else 1


if __name__ == "__main__":
    sys.exit(main())
