"""Package layout that pyproject.toml cannot express alone: ``src/hexflow`` plus the
``examples/`` folder installed as the ``hexflow_examples`` package (``hexflow demo`` runs it).
"""

from setuptools import find_packages, setup

setup(
    package_dir={"": "src", "hexflow_examples": "examples"},
    packages=find_packages("src")
    + ["hexflow_examples"]
    + [f"hexflow_examples.{p}" for p in find_packages("examples")],
)
