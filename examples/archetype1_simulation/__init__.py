"""Archetype 1, simulation & modeling: a checkpointed 2-D heat-equation run with
post-processing, plots and an archive, as one hexflow workflow (demo 1).

``heat`` is the numerical kernel, ``tasks`` and ``plots`` the phases as tasks, and
``workflow`` the DAG and the demo report. ``python -m hexflow_examples.archetype1_simulation
[WORKDIR]`` runs the demo and prints its report as JSON.
"""
