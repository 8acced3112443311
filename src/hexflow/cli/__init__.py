"""The ``hexflow`` command line."""
