"""Errors of the data layer: one base, ``DataError``, and what the CLI maps to exit codes.

``DataInputError`` is bad input (exit 2), ``DataNotFound`` names something that does not
exist (2), ``TransferFailed`` and ``QuotaExceeded`` are refused or failed work (1).
``BackendError.transient`` says whether trying again may help (network, a flipped byte)
or not (no such file, permission denied).
"""

from __future__ import annotations

from hexflow.errors import HexflowError, SpecError


class DataError(HexflowError):
    """The data layer (tiers, transfers, catalog, lifecycle) refused or failed something."""


class DataInputError(DataError, SpecError):
    """A tier, location, dataset reference, rule or option given by the user is invalid."""


class DataNotFound(DataError, LookupError):
    """No such dataset, version, file, tier or transfer."""


class QuotaExceeded(DataError):
    """A transfer would take a project past its quota (or a tier past its capacity)."""


class BackendError(DataError):
    """A storage backend failed; ``fields['transient']`` says whether a retry may help."""

    @property
    def transient(self) -> bool:
        return bool(self.fields.get("transient", False))


class IntegrityError(BackendError):
    """Content does not match its checksum or size: corrupted in flight or at rest.

    Transient by default: the copy is done again from the source."""

    def __init__(self, message: str, *, hint: str | None = None, **fields: object) -> None:
        fields.setdefault("transient", True)
        super().__init__(message, hint=hint, **fields)


class TransferFailed(DataError):
    """A transfer ended with files not copied; ``fields``: transfer, failed, reasons."""
