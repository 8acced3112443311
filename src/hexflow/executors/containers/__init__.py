"""Container runtimes for any executor: what a task's ``image=`` turns into.

- ``request``: ``ContainerRequest`` (runtime-neutral, resolved values) and
  ``ContainerCommand`` (a runtime's argv up to the image, and how the env gets in);
- ``builders``: the pure command-line builders of podman, podman-hpc, apptainer and
  shifter, and their helper commands (inspect an image, remove a container);
- ``planning``: from a task to a request — mounts resolved and checked against the
  site's allowed roots (``ContainerConfig``);
- ``tools``: the one subprocess seam for helper commands.

Executors run the built command like any other command (the local executor: its worker's
command runner; a batch executor: a line of its job script). See docs/containers.md.
Imported by worker processes: nothing here is loaded until named.
"""

from __future__ import annotations
