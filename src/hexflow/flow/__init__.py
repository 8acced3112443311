"""The Python interface: decorators, futures, workflows, YAML/JSON workflow files."""
