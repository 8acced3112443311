"""hexflow_examples: runnable demos of the six NERSC-10 workflow archetypes on hexflow.

This package owns the example workflows (one subpackage per archetype) and the demo
registry (``hexflow_examples.registry``) that the ``hexflow demo`` command reads. Examples
use only the public ``hexflow`` API.
"""
