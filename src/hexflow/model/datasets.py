"""Datasets, their immutable versions, replicas and provenance, as pure records.

A version is its manifest: the sorted list of (path, size, hash) of its files. The
canonical bytes of a manifest (``manifest_bytes``) are what its digest is taken over, so
identical content is one version. Paths are relative POSIX paths without ``..``. Metadata is
a free JSON object; the DataCite / schema.org core keys in ``CORE_FIELDS`` are type-checked.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hexflow.errors import SpecError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Metadata filters are answered by an index of (key path, value) pairs up to these lengths
# (``model.datasets.meta_pairs``); longer ones by reading the JSON.
META_KEY_MAX, META_VALUE_MAX = 128, 200

# DataCite / schema.org core: key -> expected JSON type (``list`` means a list of strings).
CORE_FIELDS: dict[str, type] = {
    "title": str,
    "creators": list,
    "description": str,
    "keywords": list,
    "license": str,
    "publisher": str,
    "dateCreated": str,
    "datePublished": str,
    "dateModified": str,
}


@dataclass(frozen=True, slots=True, order=True)
class FileEntry:
    path: str
    size: int
    hash: str  # "blake3:<hex>" or "sha256:<hex>"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "hash": self.hash}


def check_name(name: str, what: str = "dataset name") -> str:
    if not NAME_RE.match(name or ""):
        raise SpecError(
            f"{what} {name!r} is not valid",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field=what,
        )
    return name


def check_relpath(path: str) -> str:
    """A relative POSIX path inside a dataset or tier: no leading '/', no '..', no '\\0'."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or path.startswith("/") or ".." in parts or "\0" in path:
        raise SpecError(
            f"path {path!r} is not a relative path inside the dataset",
            hint="give a path like 'dir/file.h5', without '..' or a leading '/'",
            field="path",
        )
    return "/".join(parts)


def sorted_entries(entries: Iterable[FileEntry]) -> tuple[FileEntry, ...]:
    ordered = tuple(sorted(entries, key=lambda e: e.path))
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.path == b.path:
            raise SpecError(f"path {a.path!r} appears twice in the manifest", field="path")
    return ordered


def manifest_bytes(entries: Iterable[FileEntry]) -> bytes:
    """Canonical encoding: one JSON array per file, sorted by path, newline-separated."""
    lines = [
        json.dumps([e.path, e.size, e.hash], ensure_ascii=False, separators=(",", ":"))
        for e in sorted_entries(entries)
    ]
    return ("\n".join(lines) + "\n").encode()


def check_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object whose core keys have the right types; returned as a plain dict."""
    if not isinstance(metadata, Mapping):
        raise SpecError("metadata must be a JSON object", field="metadata")
    out = dict(metadata)
    for key, kind in CORE_FIELDS.items():
        if key not in out or out[key] is None:
            continue
        value = out[key]
        if kind is list:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SpecError(f"metadata {key!r} must be a list of strings", field=key)
        elif not isinstance(value, kind):
            raise SpecError(f"metadata {key!r} must be a {kind.__name__}", field=key)
        out[key] = value
    try:
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"metadata is not JSON: {exc}", field="metadata") from None
    return out


@dataclass(frozen=True, slots=True)
class VersionRecord:
    project: str
    name: str
    number: int  # 1, 2, 3... per dataset, in the order versions were registered
    digest: str  # "algo:hex" over ``manifest_bytes``: the content address
    pid: str  # persistent identifier
    created_at: float
    size: int
    files: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.number}"

    @property
    def title(self) -> str:
        return str(self.metadata.get("title") or self.name)

    def _repr_html_(self) -> str:
        """A table in Jupyter: the reference, identifier, size and the metadata."""
        rows = [
            ("version", self.ref),
            ("pid", self.pid),
            ("digest", self.digest),
            ("size", f"{self.size:,} bytes in {self.files} file(s)"),
            *(
                (str(k), json.dumps(v) if not isinstance(v, str) else v)
                for k, v in self.metadata.items()
            ),
        ]
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>{html.escape(self.title)}</caption>{body}</table>"

    def summary(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "name": self.name,
            "version": self.number,
            "ref": self.ref,
            "digest": self.digest,
            "pid": self.pid,
            "created_at": self.created_at,
            "size": self.size,
            "files": self.files,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class Replica:
    """One place a version's files live: ``location`` is the directory inside the tier."""

    ref: str
    site: str
    tier: str
    location: str
    created_at: float
    last_read_at: float | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "site": self.site,
            "tier": self.tier,
            "location": self.location,
            "created_at": self.created_at,
            "last_read_at": self.last_read_at,
        }


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """Task ``run_id/task_id`` produced ``output`` from ``input`` (refs NAME@N, or None)."""

    run_id: str
    task_id: str
    input: str | None
    output: str | None
    depth: int

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task_id": self.task_id,
            "input": self.input,
            "output": self.output,
            "depth": self.depth,
        }


def meta_value(value: Any) -> str:
    """How a scalar of the metadata is written in the filter index (and compared)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return str(value)


def meta_pairs(metadata: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every (dotted key path, scalar value) of the metadata; a list gives one pair per
    element (``keywords=ocean`` finds ``{"keywords": ["ocean", "ice"]}``), a list of objects
    the pairs of each (``creators.name=Ada``). Pairs too long to index are left out: a
    filter on such a value is answered from the JSON instead."""
    out: set[tuple[str, str]] = set()

    def walk(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{key}.{k}" if key else str(k), v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(key, v)
        elif key and value is not None:
            text = meta_value(value)
            if len(key) <= META_KEY_MAX and len(text) <= META_VALUE_MAX:
                out.add((key, text))

    walk("", metadata)
    return out


# ---------------------------------------------------------------------- datasets of tasks

_SELECTOR_RE = re.compile(r"^[A-Za-z0-9:_-]{1,80}$")
_TIER_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}(@[\w.-]+)?$")
_ROLES = {"inputs": "input", "outputs": "output"}


@dataclass(frozen=True, slots=True)
class Dataset:
    """A dataset a task reads (``inputs=``) or writes a new version of (``outputs=``).

    ``Dataset("raw")`` or ``"raw"``: as an input, the latest version when the task starts;
    as an output, a new version made of what the task wrote. ``Dataset("raw", version=3)``
    or ``"raw@3"`` (a number, a digest prefix or ``latest``): that version, inputs only.
    ``tier``: where an input is staged for the task, or an output written (default: the
    fast tier, ``qss``). ``metadata``: of the new version (outputs only).
    """

    name: str
    version: str | None = None
    tier: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.version is not None:
            version = str(self.version)
            if not _SELECTOR_RE.match(version):
                raise SpecError(
                    f"dataset {self.name}: version {self.version!r} is not valid",
                    hint="give a number, a digest prefix or 'latest'",
                    field="version",
                )
            object.__setattr__(self, "version", version)
        if self.tier is not None and not _TIER_RE.match(self.tier):
            raise SpecError(
                f"dataset {self.name}: tier {self.tier!r} is not a tier name",
                hint="e.g. qss, pss, or TIER@SITE",
                field="tier",
            )
        object.__setattr__(self, "metadata", check_metadata(self.metadata))

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}" if self.version else self.name

    @property
    def env_name(self) -> str:
        """The suffix of its environment variables: ``raw-data`` → ``RAW_DATA``."""
        return re.sub(r"[^A-Za-z0-9]", "_", self.name).upper()

    @classmethod
    def of(cls, value: object, role: str = "inputs") -> Dataset:
        """From a ``Dataset``, a ``"NAME[@VERSION]"`` string, or a mapping with the same
        keys as the constructor (YAML); ``role`` is ``inputs`` or ``outputs``."""
        if isinstance(value, Dataset):
            found = value
        elif isinstance(value, str):
            name, sep, version = value.partition("@")
            found = cls(name, version if sep else None)
        elif isinstance(value, Mapping):
            unknown = set(value) - {"name", "version", "tier", "metadata"}
            if unknown or "name" not in value:
                raise SpecError(
                    f"{role}: {dict(value)!r} is not a dataset",
                    hint="give name, and optionally version, tier, metadata",
                    field=role,
                )
            found = cls(
                str(value["name"]),
                None if value.get("version") is None else str(value["version"]),
                value.get("tier"),
                value.get("metadata") or {},
            )
        else:
            raise SpecError(
                f"{role}: expected a dataset name ('raw@3') or hx.Dataset, got {value!r}",
                field=role,
            )
        if role == "outputs" and found.version is not None:
            raise SpecError(
                f"output {found.ref}: a task makes a new version, it cannot name one",
                hint=f"write {found.name!r}",
                field="outputs",
            )
        if role == "inputs" and found.metadata:
            raise SpecError(f"input {found.ref}: metadata belongs to outputs", field="inputs")
        return found


def task_datasets(
    task: str, inputs: Iterable[object], outputs: Iterable[object]
) -> tuple[tuple[Dataset, ...], tuple[Dataset, ...]]:
    """A task's ``inputs=`` and ``outputs=`` as Datasets; each name once per task (the
    environment variables ``HEXFLOW_INPUT_<NAME>``/``HEXFLOW_OUTPUT_<NAME>`` must differ)."""
    if isinstance(inputs, str | Dataset) or isinstance(outputs, str | Dataset):
        raise SpecError(
            f"task {task}: inputs= and outputs= take lists", hint="write inputs=['raw@1']"
        )
    reads = tuple(Dataset.of(v, "inputs") for v in inputs)
    writes = tuple(Dataset.of(v, "outputs") for v in outputs)
    for role, items in (("inputs", reads), ("outputs", writes)):
        seen: dict[str, str] = {}
        for ds in items:
            if ds.env_name in seen:
                raise SpecError(
                    f"task {task}: {role} {seen[ds.env_name]!r} and {ds.name!r} would share "
                    f"HEXFLOW_{_ROLES[role].upper()}_{ds.env_name}",
                    hint="give each dataset of a task its own name",
                    field=role,
                )
            seen[ds.env_name] = ds.name
    return reads, writes
