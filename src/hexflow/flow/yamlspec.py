"""Workflow files: load a YAML (or ``.json``) workflow description into a ``Workflow``.

This module owns the file format (top-level ``name``/``params``/``defaults``/``tasks``,
the task fields, ``${param}`` substitution) and its error reporting: every problem in a
file raises ``WorkflowFileError`` whose message starts with ``path:LINE: field.path:``.
Values are checked here and then by the model's own constructors, whose ``SpecError``s are
re-raised with the line of the offending field. The user guide is docs/yaml.md.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml

from hexflow.errors import SpecError, WorkflowFileError
from hexflow.flow.workflow import Workflow
from hexflow.model import QoS, Resources, RetryPolicy, TaskKind, TaskSpec, find_cycle
from hexflow.model.container import check_image, normalize_mounts
from hexflow.model.datasets import Dataset, task_datasets
from hexflow.model.resources import parse_duration, parse_memory
from hexflow.model.sites import site_names

T = TypeVar("T")
Where = tuple[int, str]  # (1-based line, field path such as "tasks.simulate.cpus")
Options = tuple[dict[str, Any], dict[str, Where]]  # option values, where each was set

TOP_FIELDS = ("name", "params", "defaults", "tasks")
# fmt: off
OPTION_FIELDS = ("cpus", "memory", "gpus", "nodes", "walltime", "timeout", "qos", "deadline",
                 "retries", "backoff", "checkpoint", "cache", "env", "cwd", "shell", "image",
                 "mounts", "site", "sites", "gang", "exclusive")
# fmt: on
TASK_FIELDS = ("name", "command", "depends_on", "after", "inputs", "outputs", *OPTION_FIELDS)
_TASK_NAME = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")  # no leading dot: names are paths
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REF = re.compile(r"\$(\$?)\{([^{}]*)(\})?")  # ${name}, $${escaped}, or an unclosed ${


@dataclass(frozen=True, slots=True)
class _Node:
    """A value read from the file and its 1-based line; a mapping's value is a dict of _Nodes."""

    value: Any
    line: int

    def plain(self) -> Any:
        """The value as plain Python (for messages)."""
        if isinstance(self.value, dict):
            return {key: node.plain() for key, node in self.value.items()}
        return [node.plain() for node in self.value] if isinstance(self.value, list) else self.value


def load_workflow(
    path: str | Path,
    params: Mapping[str, str] | None = None,
    *,
    workdir: str | Path | None = None,
) -> Workflow:
    """Read a workflow file and return a ``Workflow`` holding its tasks, ready to ``run()``.

    ``params`` override the file's ``params:`` defaults (the CLI's ``-p key=value``);
    ``workdir`` is given to the ``Workflow`` (the directory its tasks run in).
    Raises ``WorkflowFileError`` (fields ``path``, ``line``, ``field``) for any problem.
    """
    return _Loader(Path(path), str(path), dict(params or {})).load(workdir)


def load_workflow_text(
    text: str,
    params: Mapping[str, str] | None = None,
    *,
    json_format: bool = False,
    source: str = "workflow",
    workdir: str | Path | None = None,
) -> Workflow:
    """``load_workflow`` of a document in memory (e.g. an API request body); messages
    start with ``source:LINE:``. ``json_format`` reads it as JSON rather than YAML."""
    loader = _Loader(Path(source), source, dict(params or {}), text=text)
    loader.is_json = json_format
    return loader.load(workdir)


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)  # libyaml, if PyYAML was built with it


def _compose(text: str) -> yaml.Node | None:
    """The document's node tree, read by libyaml where available (several times faster:
    the service parses every submission). A document libyaml refuses is read again by
    the Python parser, so that errors have its messages and lines everywhere."""
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


class _Loader:
    def __init__(
        self, path: Path, shown: str, given: dict[str, str], text: str | None = None
    ) -> None:
        self.path, self.shown, self.given, self.source = path, shown, given, text
        self.is_json = path.suffix.lower() == ".json"
        self.ctor = yaml.SafeLoader("")  # builds scalars (ints, floats, bools...) from nodes
        self.params: dict[str, str | None] = {}
        self.used: set[str] = set()
        self.default_values: dict[str, Any] = {}
        self.default_at: dict[str, Where] = {}
        self.dep_at: dict[tuple[str, str], Where] = {}  # (task, dependency) -> where listed
        self.shell_params: dict[str, str] = {}  # HEXFLOW_PARAM_* of the task being read

    # ------------------------------------------------------------------ errors
    def error(
        self, line: int | None, where: str, msg: str, hint: str | None = None
    ) -> WorkflowFileError:
        text = f"{self.shown}:{line}: " if line else f"{self.shown}: "
        text += f"{where}: {msg}" if where else msg
        return WorkflowFileError(text, hint=hint, path=self.shown, line=line, field=where or None)

    def fail(self, line: int | None, where: str, msg: str, hint: str | None = None) -> NoReturn:
        raise self.error(line, where, msg, hint)

    def unknown(self, line: int, where: str, key: str, valid: Iterable[str], what: str) -> NoReturn:
        names = list(valid)
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        if len(names) <= 20:
            hint += f"valid: {', '.join(names)}" if names else "there are none"
        self.fail(line, where, f"unknown {what} {key!r}", hint)

    def model(self, fn: Callable[..., T], at: Mapping[str, Where], **kw: Any) -> T:
        """Call a model constructor; a SpecError becomes a WorkflowFileError at its field."""
        try:
            return fn(**kw)
        except WorkflowFileError:
            raise
        except SpecError as exc:
            name = str(exc.fields.get("field") or "")
            line, where = at.get(name) or at.get("") or next(iter(at.values()))
            msg = re.sub(rf"^(task \S+: )?({re.escape(name)}: )?", "", exc.message)
            raise self.error(line, where, msg, exc.hint) from None

    # ------------------------------------------------------------------ reading
    def load(self, workdir: str | Path | None) -> Workflow:
        root = self.read()
        if not isinstance(root.value, dict):
            self.fail(root.line, "", "the file must be a mapping with `name:` and `tasks:`")
        top: dict[str, _Node] = root.value
        self.check_keys(top, TOP_FIELDS, "")
        for key in ("name", "tasks"):
            if key not in top:
                self.fail(root.line, key, f"missing: a workflow file needs `{key}:`")
        name = self.typed(top["name"], "name", str, "a string").strip()
        if not name:
            self.fail(top["name"].line, "name", "must not be empty")
        self.read_params(top.get("params"))
        if "defaults" in top:
            fields = self.mapping(top["defaults"], "defaults")
            self.check_keys(fields, OPTION_FIELDS, "defaults")
            self.default_values, self.default_at = self.options(fields, "defaults")
        entries = self.task_entries(top["tasks"])
        specs = {key: self.build_task(key, *entry, entries) for key, entry in entries.items()}
        self.check_given_params(top.get("params"))
        wf = Workflow(name, workdir=workdir)
        for spec in self.dependency_order(specs):
            self.model(wf.add_spec, {"": (entries[spec.id][0], f"tasks.{spec.id}")}, spec=spec)
        return wf

    def read(self) -> _Node:
        try:
            text = self.source if self.source is not None else self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"cannot read the workflow file: {getattr(exc, 'strerror', None) or exc}"
            if isinstance(exc, FileNotFoundError):
                msg = "no such workflow file"
            raise self.error(None, "", msg) from None
        if self.is_json:
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                msg = f"invalid JSON: {exc.msg} (column {exc.colno})"
                raise self.error(exc.lineno, "", msg) from None
            text = text.replace("\t", " ")  # valid JSON has tabs only between tokens
        try:
            root = _compose(text)
        except yaml.MarkedYAMLError as exc:
            mark, start = exc.problem_mark or exc.context_mark, exc.context_mark
            msg = f"invalid YAML: {exc.problem or exc.context}"
            if exc.context and str(exc.problem).startswith("but "):
                msg = f"invalid YAML: {exc.context}, {exc.problem}"
            elif exc.context and exc.problem and start and mark and start.line != mark.line:
                msg += f" ({exc.context} that starts on line {start.line + 1})"
            raise self.error(mark.line + 1 if mark else None, "", msg) from None
        except yaml.YAMLError as exc:
            raise self.error(None, "", f"invalid YAML: {exc}") from None
        if root is None:
            self.fail(1, "", "the file is empty", "a workflow file needs `name:` and `tasks:`")
        return self.convert(root, root.start_mark.line + 1, "", frozenset())

    def convert(self, node: yaml.Node, line: int, where: str, seen: frozenset[int]) -> _Node:
        """The composed YAML as _Nodes: keys as written, merge keys (``<<: *x``) applied."""
        if id(node) in seen:
            self.fail(line, where, "an alias refers to a node that contains it")
        seen |= {id(node)}
        if isinstance(node, yaml.SequenceNode):
            subs = enumerate(node.value)
            return _Node(
                [self.convert(v, v.start_mark.line + 1, f"{where}[{i}]", seen) for i, v in subs],
                line,
            )
        if isinstance(node, yaml.MappingNode):
            items: dict[str, _Node] = {}
            merged: dict[str, _Node] = {}
            for key_node, value_node in node.value:
                key_line, key = key_node.start_mark.line + 1, key_node.value
                sub = f"{where}.{key}" if where else str(key)
                if not isinstance(key_node, yaml.ScalarNode):
                    self.fail(key_line, where, "a key must be a name, not a list or mapping")
                if key_node.tag == "tag:yaml.org,2002:merge" and not self.is_json:
                    part = self.convert(value_node, key_line, where, seen)
                    for src in part.value if isinstance(part.value, list) else [part]:
                        for k, v in self.mapping(src, f"{where}.<<").items():
                            merged.setdefault(k, v)  # the first mapping merged wins
                    continue
                if key in items:
                    self.fail(key_line, sub, f"duplicate key (first on line {items[key].line})")
                items[key] = self.convert(value_node, key_line, sub, seen)
            return _Node(merged | items, line)
        if self.is_json:  # quoted scalars are strings; plain ones numbers, true, false, null
            if not getattr(node, "style", None):  # plain: None (Python parser), "" (libyaml)
                return _Node(json.loads(node.value), line)
            return _Node(node.value.encode("utf-16", "surrogatepass").decode("utf-16"), line)
        try:
            return _Node(self.ctor.construct_object(node), line)
        except (yaml.YAMLError, ValueError) as exc:
            problem = getattr(exc, "problem", None) or exc
            raise self.error(line, where, f"cannot read {node.value!r}: {problem}") from None

    # ------------------------------------------------------------------ typed values
    def type_error(self, node: _Node, where: str, expected: str) -> NoReturn:
        hint = None
        if isinstance(node.value, str) and "${" in node.value:
            hint = "parameters are substituted only in command, env, cwd, image and mounts"
        self.fail(node.line, where, f"expected {expected}, got {node.plain()!r}", hint)

    def mapping(self, node: _Node, where: str) -> dict[str, _Node]:
        return self.typed(node, where, dict, "a mapping of `key: value` entries")

    def check_keys(self, fields: Mapping[str, _Node], valid: tuple[str, ...], at: str) -> None:
        for key, node in fields.items():
            if key not in valid:
                what = "task field" if at.startswith("tasks.") else "field" if at else "key"
                self.unknown(node.line, f"{at}.{key}" if at else key, key, valid, what)

    def typed(self, node: _Node, where: str, kind: type[T], expected: str) -> T:
        if not isinstance(node.value, kind):
            self.type_error(node, where, expected)
        return node.value

    def number(self, node: _Node, where: str, whole: bool = False) -> float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            self.type_error(node, where, "a whole number" if whole else "a number")
        if not math.isfinite(value):
            self.fail(node.line, where, f"must be a finite number, got {value!r}")
        return value

    def text(self, node: _Node, where: str, null: bool = False) -> str | None:
        """A string, number or boolean as text (``true``/``false``); None only if ``null``."""
        value = node.value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float) or (null and value is None):
            return None if value is None else str(value)
        self.type_error(node, where, "a string or number")

    # ------------------------------------------------------------------ params
    def read_params(self, node: _Node | None) -> None:
        line = node.line if node else 1
        for key, child in self.mapping(node, "params").items() if node else ():
            if not _PARAM_NAME.match(key):
                self.fail(child.line, f"params.{key}", "a name is letters, digits and '_'")
            self.params[key] = self.text(child, f"params.{key}", null=True)
        for key, value in self.given.items():
            if not _PARAM_NAME.match(key):
                self.fail(line, "params", f"bad parameter name {key!r} given")
            self.params[key] = str(value)

    def check_given_params(self, node: _Node | None) -> None:
        """A given parameter must be declared or used: a mistyped -p name is an error."""
        declared = list(self.mapping(node, "params")) if node else []
        for key in self.given:
            if key not in declared and key not in self.used:
                close = difflib.get_close_matches(key, declared, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "declare it under `params:`"
                msg = f"parameter {key!r} was given, but the file neither declares nor uses it"
                self.fail(node.line if node else 1, "params", msg, hint)

    def substitute(self, text: str, line: int, where: str, quote: bool = False) -> str:
        """``${name}`` replaced by the parameter's value.

        With ``quote`` (a ``shell: true`` command) the value never enters the script text:
        the reference becomes one to an environment variable ``HEXFLOW_PARAM_name`` set for
        the task, which the shell expands without parsing it again (no injection, whatever
        the value and wherever the reference stands, except inside single quotes, where the
        shell would not expand it: that is an error).
        """

        def replace(match: re.Match[str]) -> str:
            escaped, key, closed = match.groups()
            if escaped:
                return "${" + key + (closed or "")
            if not closed or not _PARAM_NAME.match(key):
                hint = "write ${name}, or $${...} for a literal ${...}"
                self.fail(line, where, f"bad parameter reference {match.group(0)!r}", hint)
            if key not in self.params:
                close = difflib.get_close_matches(key, list(self.params), n=1)
                hint = f"did you mean ${{{close[0]}}}? " if close else ""
                hint += f"declare it under `params:`, or write $${{{key}}} for a literal"
                self.fail(line, where, f"unknown parameter ${{{key}}}", hint)
            value = self.params[key]
            if value is None:
                self.fail(line, where, f"parameter ${{{key}}} has no value", f"pass -p {key}=...")
            self.used.add(key)
            if not quote:
                return value
            state = _quote_state(text, match.start())
            if state == "'":
                hint = "move ${...} out of the single quotes, e.g. 'abc'\"${x}\"'def'"
                self.fail(line, where, f"${{{key}}} inside single quotes is not expanded", hint)
            self.shell_params[f"HEXFLOW_PARAM_{key}"] = value
            ref = "${HEXFLOW_PARAM_" + key + "}"
            return ref if state == '"' else f'"{ref}"'

        return _REF.sub(replace, text)

    # ------------------------------------------------------------------ tasks
    def task_entries(self, node: _Node) -> dict[str, tuple[int, dict[str, _Node]]]:
        """Task name -> (line, fields), from the mapping form or the list form."""
        pairs: list[tuple[str, int, _Node]] = []
        if isinstance(node.value, dict):
            pairs = [(key, child.line, child) for key, child in node.value.items()]
        elif isinstance(node.value, list):
            for i, item in enumerate(node.value):
                if "name" not in self.mapping(item, f"tasks[{i}]"):
                    self.fail(item.line, f"tasks[{i}].name", "missing: a listed task needs one")
                key = self.typed(item.value["name"], f"tasks[{i}].name", str, "a string")
                pairs.append((key, item.line, item))
        elif node.value is not None:
            self.type_error(node, "tasks", "a mapping of name -> task, or a list of tasks")
        if not pairs:
            self.fail(node.line, "tasks", "the workflow has no tasks", "add at least one task")
        out: dict[str, tuple[int, dict[str, _Node]]] = {}
        for key, line, item in pairs:
            where = f"tasks.{key}"
            if not _TASK_NAME.match(key):
                self.fail(
                    line,
                    where,
                    "a task name may hold only letters, digits, '_', '.', '-' "
                    "and may not start with '.'",
                )
            if key in out:
                self.fail(line, where, f"duplicate task name (first on line {out[key][0]})")
            fields = self.mapping(_Node({} if item.value is None else item.value, line), where)
            if "name" in fields and fields["name"].value != key:
                self.fail(fields["name"].line, f"{where}.name", "differs from the task's key")
            out[key] = (line, fields)
        return out

    def option(self, key: str, node: _Node, where: str) -> Any:
        """The value of one option field (under defaults or a task), checked and converted."""
        at = {key: (node.line, where)}
        if key in ("cpus", "backoff"):
            return self.number(node, where)
        if key in ("gpus", "nodes", "retries"):
            return self.number(node, where, whole=True)
        if key in ("checkpoint", "cache", "shell", "exclusive"):
            return self.typed(node, where, bool, "true or false")
        if key == "memory":
            return self.model(parse_memory, at, value=node.value)
        if key == "qos":
            return self.model(QoS.parse, at, value=node.value)
        if key == "env":
            return self.env(node, where)
        if key == "gang":
            return self.substitute(self.typed(node, where, str, "a gang name"), node.line, where)
        if key == "cwd":
            return self.substitute(self.typed(node, where, str, "a string"), node.line, where)
        if key == "image":
            name = self.substitute(self.typed(node, where, str, "a string"), node.line, where)
            return self.model(check_image, at, value=name)
        if key == "mounts":
            return self.mounts(node, where)
        if key == "site":
            name = self.typed(node, where, str, "a site name")
            return self.model(site_names, at, site=name, where=where)
        if key == "sites":
            items = self.typed(node, where, list, "a list of site names")
            names = [
                self.typed(item, f"{where}[{i}]", str, "a site name")
                for i, item in enumerate(items)
            ]
            return self.model(site_names, at, sites=names, where=where)
        return self.model(parse_duration, at, value=node.value, field=key)  # time limits

    def options(self, fields: Mapping[str, _Node], prefix: str) -> Options:
        """Option values and where each was set: the defaults, overridden by ``fields``."""
        values, at = dict(self.default_values), dict(self.default_at)
        for key, node in fields.items():
            if key in OPTION_FIELDS:
                value = self.option(key, node, f"{prefix}.{key}")
                values[key] = {**values.get("env", {}), **value} if key == "env" else value
                at[key] = (node.line, f"{prefix}.{key}")
        return values, at

    def build_task(
        self, name: str, line: int, fields: dict[str, _Node], entries: Mapping[str, Any]
    ) -> TaskSpec:
        prefix = f"tasks.{name}"
        self.check_keys(fields, TASK_FIELDS, prefix)
        values, at = self.options(fields, prefix)
        get = values.get
        if "command" not in fields:
            hint = "give `command:` as a list of arguments or as one string"
            self.fail(line, f"{prefix}.command", "missing: a task needs a command", hint)
        self.shell_params = {}
        command = self.command(fields["command"], f"{prefix}.command", get("shell", False))
        deps: dict[str, None] = {}
        for key in ("depends_on", "after"):
            where, listed = f"{prefix}.{key}", fields.get(key) or _Node(None, line)
            items = listed.value if isinstance(listed.value, list) else [listed]
            for node in items if listed.value is not None else []:
                dep = self.typed(node, where, str, "a task name or a list of task names")
                if dep not in entries:
                    self.unknown(node.line, where, dep, entries, "task")
                if dep == name:
                    self.fail(node.line, where, "a task cannot depend on itself")
                deps[dep] = None
                self.dep_at.setdefault((name, dep), (node.line, where))
        resources = self.model(
            Resources, at, cpus=get("cpus", 1), memory=get("memory", 0), gpus=get("gpus", 0),
            nodes=get("nodes", 1), walltime=get("walltime"),
        )  # fmt: skip
        retry = self.model(RetryPolicy, at, retries=get("retries", 0), backoff=get("backoff", 1.0))
        reads, writes = self.datasets(name, fields, prefix)
        if "site" in fields and "sites" in fields:
            self.fail(fields["sites"].line, f"{prefix}.sites", "give site or sites, not both")
        sites = get("site") if "site" in fields else get("sites") if "sites" in fields else None
        at |= {"": (line, prefix), "command": (fields["command"].line, f"{prefix}.command")}
        return self.model(
            TaskSpec, at, id=name, name=name, kind=TaskKind.SHELL, command=command,
            shell=get("shell", False), resources=resources, qos=get("qos", QoS.REGULAR),
            deps=tuple(deps), retry=retry, timeout=get("timeout"), deadline=get("deadline"),
            cache=get("cache", False), checkpoint=get("checkpoint", False),
            env={**get("env", {}), **self.shell_params},
            cwd=get("cwd"), image=get("image"), mounts=get("mounts", ()),
            reads=reads, writes=writes, sites=sites or get("site") or get("sites") or (),
            gang=get("gang"), exclusive=get("exclusive", False),
        )  # fmt: skip

    def datasets(
        self, name: str, fields: Mapping[str, _Node], prefix: str
    ) -> tuple[tuple[Dataset, ...], tuple[Dataset, ...]]:
        """``inputs: [raw@3, ...]`` and ``outputs: [clean, {name: x, metadata: {...}}]``."""
        lists: dict[str, list[Any]] = {"inputs": [], "outputs": []}
        at: dict[str, Where] = {}
        for role in lists:
            node = fields.get(role)
            if node is None or node.value is None:
                continue
            where = f"{prefix}.{role}"
            at[role] = (node.line, where)
            for i, item in enumerate(self.typed(node, where, list, "a list of datasets")):
                value = item.plain()
                if isinstance(value, str):
                    value = self.substitute(value, item.line, f"{where}[{i}]")
                lists[role].append(value)
        if not at:
            return (), ()
        for key in ("version", "tier", "metadata", "dataset name"):
            at.setdefault(key, next(iter(at.values())))
        return self.model(
            task_datasets, at, task=name, inputs=lists["inputs"], outputs=lists["outputs"]
        )

    def command(self, node: _Node, where: str, shell: bool) -> tuple[str, ...]:
        """argv from a list, or from a string split like a shell would (no shell runs)."""
        if isinstance(node.value, str) and shell:
            argv = [self.substitute(node.value, node.line, where, quote=True)]
        elif isinstance(node.value, str):
            try:
                words = shlex.split(node.value)
            except ValueError as exc:
                hint = "check the quotes, or give the command as a list"
                raise self.error(node.line, where, f"cannot split: {exc}", hint) from None
            argv = [self.substitute(word, node.line, where) for word in words]
        elif isinstance(node.value, list):
            if shell and len(node.value) != 1:
                self.fail(node.line, where, "with `shell: true` the command is one string")
            argv = []
            for i, item in enumerate(node.value):
                arg = self.text(item, f"{where}[{i}]") or ""
                argv.append(self.substitute(arg, item.line, f"{where}[{i}]", quote=shell))
        else:
            self.type_error(node, where, "a list of arguments or one string")
        if not argv or not argv[0].strip():
            self.fail(node.line, where, "the command is empty")
        return tuple(argv)

    def mounts(self, node: _Node, where: str) -> tuple[str, ...]:
        """``[host:container[:ro|rw], ...]``, each checked at its own line."""
        items = self.typed(node, where, list, "a list of 'host:container[:ro|rw]' strings")
        out = []
        for i, item in enumerate(items):
            text = self.typed(item, f"{where}[{i}]", str, "a 'host:container[:ro|rw]' string")
            value = self.substitute(text, item.line, f"{where}[{i}]")
            out.append(self.model(normalize_mounts, {"mounts": (item.line, f"{where}[{i}]")},
                                  values=[value])[0])  # fmt: skip
        return self.model(normalize_mounts, {"mounts": (node.line, where)}, values=out)

    def env(self, node: _Node, where: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, child in self.mapping(node, where).items():
            if not key or "=" in key or "\0" in key:
                self.fail(child.line, f"{where}.{key}", "not a valid environment variable name")
            value = self.text(child, f"{where}.{key}") or ""
            out[key] = self.substitute(value, child.line, f"{where}.{key}")
        return out

    def dependency_order(self, specs: dict[str, TaskSpec]) -> list[TaskSpec]:
        """The specs with each task after its dependencies, otherwise in file order."""
        cycle = find_cycle(specs)
        if cycle:
            line, where = self.dep_at[(cycle[1], cycle[0])]
            msg = f"the workflow has a cycle: {' -> '.join(cycle)}"
            self.fail(line, where, msg, "remove one of these dependencies")
        order: dict[str, TaskSpec] = {}
        pending = list(specs)
        while pending:  # one pass when the file lists dependencies first
            for name in pending:
                if all(dep in order for dep in specs[name].deps):
                    order[name] = specs[name]
            pending = [name for name in pending if name not in order]
        return list(order.values())


def _quote_state(text: str, end: int) -> str:
    """The POSIX shell quoting in force at ``text[end]``: ``'``, ``"`` or ``""`` (none)."""
    state, i = "", 0
    while i < end:
        ch = text[i]
        if state == "'":
            if ch == "'":
                state = ""
        elif ch == "\\":
            i += 1  # the next character is escaped (outside single quotes)
        elif ch == "'" and state == "":
            state = "'"
        elif ch == '"':
            state = "" if state == '"' else '"'
        i += 1
    return state
