"""Cache keys for ``cache=True`` tasks: the code identity plus the exact inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from hexflow.model import TaskSpec


def cache_key(spec: TaskSpec, inputs: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    digest.update(spec.kind.value.encode())
    digest.update(spec.cache_salt.encode())
    digest.update(spec.payload or b"")
    digest.update(repr((spec.command, spec.shell, spec.cwd, sorted(spec.env.items()))).encode())
    if spec.image is not None:  # the same command in another image is another computation
        digest.update(repr((spec.image, spec.mounts)).encode())
    for dep in spec.inputs:
        digest.update(dep.encode())
        digest.update(inputs.get(dep) or b"")
    return digest.hexdigest()
