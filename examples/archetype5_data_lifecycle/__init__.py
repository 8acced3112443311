"""Archetype 5, data lifecycle: data from an "external source" (a beamline's detector) is
ingested with verified transfers, registered as an immutable dataset version, preprocessed
by a workflow that declares its datasets, analysed by several users from the same shared
version, archived by lifecycle rules and published as RO-Crates (demo 5).

``source`` is the instrument, ``tasks`` the preprocessing and the analyses, ``workflow``
the steps and the demo report. ``python -m hexflow_examples.archetype5_data_lifecycle
[WORKDIR]`` runs the demo and prints its report as JSON; ``archetype5.ipynb`` walks
through the same steps in Jupyter.
"""
