"""Workflow files (hexflow.flow.yamlspec): every bad file names its line and field."""

from __future__ import annotations

import pickle
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

import hexflow as hx
from hexflow.errors import SpecError, WorkflowFileError
from hexflow.flow.yamlspec import load_workflow
from hexflow.model import QoS, TaskKind
from hexflow.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "workflows"


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def fails(
    tmp_path: Path,
    text: str,
    line: int | None,
    field: str | None,
    *words: str,
    name: str = "flow.yaml",
    params: dict[str, str] | None = None,
) -> WorkflowFileError:
    """Load ``text``; assert the error starts with ``path:line: field:`` and holds ``words``."""
    path = write(tmp_path, text, name)
    with pytest.raises(WorkflowFileError) as info:
        load_workflow(path, params)
    err = info.value
    prefix = f"{path}:{line}: " if line else f"{path}: "
    prefix += f"{field}: " if field else ""
    assert str(err).startswith(prefix), str(err)
    assert err.fields == {"path": str(path), "line": line, "field": field}
    for word in words:
        assert word in str(err), (word, str(err))
    return err


# ---------------------------------------------------------------------- errors
def test_yaml_syntax_error_gives_the_parsers_line(tmp_path: Path) -> None:
    fails(
        tmp_path,
        """
        name: x
        tasks:
          a:
            command: [echo, hi
          b:
            command: echo
        """,
        5,
        None,
        "invalid YAML",
        "starts on line 4",
    )


def test_tab_indentation_is_a_syntax_error(tmp_path: Path) -> None:
    fails(tmp_path, "name: x\ntasks:\n\ta: 1\n", 3, None, "invalid YAML", "'\\t'")


def test_missing_name(tmp_path: Path) -> None:
    fails(tmp_path, "tasks:\n  a: {command: echo}\n", 1, "name", "missing")


def test_missing_tasks(tmp_path: Path) -> None:
    fails(tmp_path, "# a comment\nname: x\n", 2, "tasks", "missing")


@pytest.mark.parametrize("tasks", ["{}", "[]", ""])
def test_empty_tasks(tmp_path: Path, tasks: str) -> None:
    fails(tmp_path, f"name: x\ntasks: {tasks}\n", 2, "tasks", "no tasks")


def test_unknown_top_level_key_suggests_the_closest(tmp_path: Path) -> None:
    err = fails(tmp_path, "name: x\ntaks:\n  a: {command: echo}\n", 2, "taks", "unknown")
    assert err.hint is not None and "did you mean 'tasks'" in err.hint


def test_unknown_task_field_suggests_the_closest(tmp_path: Path) -> None:
    text = """
    name: x
    tasks:
      simulate:
        command: echo
        cpu: 2
    """
    err = fails(tmp_path, text, 5, "tasks.simulate.cpu", "unknown task field 'cpu'")
    assert err.hint is not None and "did you mean 'cpus'" in err.hint


def test_unknown_default_field(tmp_path: Path) -> None:
    text = "name: x\ndefaults:\n  retires: 2\ntasks:\n  a: {command: echo}\n"
    err = fails(tmp_path, text, 3, "defaults.retires", "unknown")
    assert err.hint is not None and "'retries'" in err.hint


def test_cpus_must_be_a_number(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    cpus: abc\n"
    fails(tmp_path, text, 5, "tasks.a.cpus", "expected a number, got 'abc'")


def test_retries_must_be_whole(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    retries: 1.5\n"
    fails(tmp_path, text, 5, "tasks.a.retries", "expected a whole number, got 1.5")


def test_negative_cpus_message_is_exact(tmp_path: Path) -> None:
    text = """
    name: heat-study
    params:
      steps: 100
    tasks:
      simulate:
        command: echo
        cpus: -1
    """
    path = write(tmp_path, text, "pipeline.yaml")
    with pytest.raises(WorkflowFileError) as info:
        load_workflow(path)
    assert info.value.message == f"{path}:7: tasks.simulate.cpus: must not be negative, got -1"


def test_model_errors_are_wrapped_with_the_field_line(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    nodes: 0\n"
    fails(tmp_path, text, 5, "tasks.a.nodes", "at least one node")


def test_bad_memory(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    memory: 12XB\n"
    err = fails(tmp_path, text, 5, "tasks.a.memory", "cannot read '12XB' as a size")
    assert err.hint is not None and "512M" in err.hint


def test_bad_walltime(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    walltime: 10 minutes\n"
    fails(tmp_path, text, 5, "tasks.a.walltime", "as a duration")


def test_bad_timeout_keeps_its_own_field_name(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    timeout: -5\n"
    fails(tmp_path, text, 5, "tasks.a.timeout", "must be positive")


def test_unknown_qos(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    qos: fast\n"
    err = fails(tmp_path, text, 5, "tasks.a.qos", "unknown class 'fast'")
    assert err.hint is not None and "realtime" in err.hint


def test_bad_default_points_at_the_defaults_line(tmp_path: Path) -> None:
    text = "name: x\ndefaults:\n  memory: lots\ntasks:\n  a: {command: echo}\n"
    fails(tmp_path, text, 3, "defaults.memory", "cannot read 'lots'")


def test_missing_command(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    cpus: 1\n"
    fails(tmp_path, text, 3, "tasks.a.command", "missing")


def test_task_without_fields_is_missing_its_command(tmp_path: Path) -> None:
    fails(tmp_path, "name: x\ntasks:\n  a:\n", 3, "tasks.a.command", "missing")


@pytest.mark.parametrize("command", ["[]", '""', '"   "'])
def test_empty_command(tmp_path: Path, command: str) -> None:
    text = f"name: x\ntasks:\n  a:\n    command: {command}\n"
    fails(tmp_path, text, 4, "tasks.a.command", "empty")


def test_command_with_unbalanced_quotes(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo 'hi\n"
    fails(tmp_path, text, 4, "tasks.a.command", "cannot split")


def test_command_item_of_the_wrong_type_names_its_index(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command:\n      - echo\n      - {x: 1}\n"
    fails(tmp_path, text, 6, "tasks.a.command[1]", "expected a string or number")


def test_shell_with_a_list_of_arguments(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    shell: true\n    command: [echo, hi]\n"
    fails(tmp_path, text, 5, "tasks.a.command", "one string")


def test_dependency_on_unknown_task_suggests_the_closest(tmp_path: Path) -> None:
    text = """
    name: x
    tasks:
      setup: {command: echo}
      run:
        command: echo
        depends_on:
          - setpu
    """
    err = fails(tmp_path, text, 7, "tasks.run.depends_on", "unknown task 'setpu'")
    assert err.hint is not None and "did you mean 'setup'" in err.hint


def test_self_dependency(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    after: a\n"
    fails(tmp_path, text, 5, "tasks.a.after", "itself")


def test_cycle_is_named(tmp_path: Path) -> None:
    text = """
    name: x
    tasks:
      a:
        command: echo
        depends_on: [b]
      b:
        command: echo
        depends_on: [a]
    """
    err = fails(tmp_path, text, 8, "tasks.b.depends_on", "cycle: a -> b -> a")
    assert err.hint is not None


def test_duplicate_task_names_in_list_form(tmp_path: Path) -> None:
    text = """
    name: x
    tasks:
      - name: a
        command: echo
      - name: a
        command: ls
    """
    fails(tmp_path, text, 5, "tasks.a", "duplicate task name (first on line 3)")


def test_duplicate_keys_in_a_mapping(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a: {command: echo}\n  a: {command: ls}\n"
    fails(tmp_path, text, 4, "tasks.a", "duplicate key (first on line 3)")


def test_listed_task_needs_a_name(tmp_path: Path) -> None:
    fails(tmp_path, "name: x\ntasks:\n  - command: echo\n", 3, "tasks[0].name", "missing")


@pytest.mark.parametrize("name", ["my task", "a/b", "'é'"])
def test_bad_task_name_characters(tmp_path: Path, name: str) -> None:
    shown = name.strip("'")
    text = f"name: x\ntasks:\n  ok: {{command: echo}}\n  {name}: {{command: echo}}\n"
    fails(tmp_path, text, 4, f"tasks.{shown}", "letters, digits")


def test_unknown_param(tmp_path: Path) -> None:
    text = """
    name: x
    params:
      steps: 10
    tasks:
      a:
        command: ["echo", "${stesp}"]
    """
    err = fails(tmp_path, text, 6, "tasks.a.command[1]", "unknown parameter ${stesp}")
    assert err.hint is not None and "did you mean ${steps}" in err.hint


def test_unknown_param_in_env_and_cwd(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo\n    env:\n      A: ${nope}\n"
    fails(tmp_path, text, 6, "tasks.a.env.A", "${nope}")
    text = "name: x\ntasks:\n  a:\n    command: echo\n    cwd: /tmp/${nope}\n"
    fails(tmp_path, text, 5, "tasks.a.cwd", "${nope}")


def test_unclosed_param_reference(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  a:\n    command: echo ${steps\n"
    fails(tmp_path, text, 4, "tasks.a.command", "bad parameter reference")


def test_param_without_value_must_be_given(tmp_path: Path) -> None:
    text = "name: x\nparams:\n  input:\ntasks:\n  a: {command: 'cat ${input}'}\n"
    err = fails(tmp_path, text, 5, "tasks.a.command", "${input} has no value")
    assert err.hint == "pass -p input=..."
    assert load_workflow(tmp_path / "flow.yaml", {"input": "f"}).specs["a"].command == ("cat", "f")


def test_mistyped_given_param(tmp_path: Path) -> None:
    text = "name: x\nparams:\n  steps: 1\ntasks:\n  a: {command: 'echo ${steps}'}\n"
    err = fails(tmp_path, text, 2, "params", "'stpes' was given", params={"stpes": "5"})
    assert err.hint == "did you mean 'steps'?"


def test_params_are_not_substituted_in_numbers(tmp_path: Path) -> None:
    text = "name: x\nparams:\n  n: 2\ntasks:\n  a:\n    command: echo\n    cpus: ${n}\n"
    err = fails(tmp_path, text, 7, "tasks.a.cpus", "expected a number")
    assert err.hint is not None and "substituted only in command" in err.hint


def test_wrong_types(tmp_path: Path) -> None:
    fails(tmp_path, "name: [x]\ntasks: {a: {command: echo}}\n", 1, "name", "expected a string")
    fails(tmp_path, "name: x\ntasks: echo\n", 2, "tasks", "expected a mapping of name")
    text = "name: x\ntasks:\n  a:\n    command: echo\n    checkpoint: 'yes'\n"
    fails(tmp_path, text, 5, "tasks.a.checkpoint", "expected true or false")
    text = "name: x\ntasks:\n  a:\n    command: echo\n    env: [A]\n"
    fails(tmp_path, text, 5, "tasks.a.env", "expected a mapping")
    text = "name: x\ntasks:\n  a:\n    command: echo\n    cpus: .nan\n"
    fails(tmp_path, text, 5, "tasks.a.cpus", "finite")
    text = "name: x\nparams:\n  p: [1]\ntasks:\n  a: {command: echo}\n"
    fails(tmp_path, text, 3, "params.p", "expected a string or number, got [1]")


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    fails(tmp_path, "- a\n- b\n", 1, None, "must be a mapping")
    fails(tmp_path, "", 1, None, "empty")


def test_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(WorkflowFileError) as info:
        load_workflow(path)
    assert info.value.message == f"{path}: no such workflow file"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_json_syntax_error_gives_the_json_line(tmp_path: Path) -> None:
    text = '{\n  "name": "x",\n  "tasks": {\n    "a": {"command": "echo",}\n  }\n}\n'
    fails(tmp_path, text, 4, None, "invalid JSON", name="flow.json")


def test_json_value_errors_have_lines_too(tmp_path: Path) -> None:
    text = '{\n\t"name": "x",\n\t"tasks": {\n\t\t"a": {"command": "echo", "cpus": -1e0}\n\t}\n}\n'
    fails(tmp_path, text, 4, "tasks.a.cpus", "must not be negative", name="flow.json")


def test_errors_pickle_with_their_fields(tmp_path: Path) -> None:
    err = fails(tmp_path, "name: x\n", 1, "tasks", "missing")
    copy = pickle.loads(pickle.dumps(err))
    assert copy.message == err.message and copy.fields == err.fields
    assert isinstance(copy, SpecError)


# ---------------------------------------------------------------------- happy paths
FULL = """
name: heat-study
params:
  steps: 100
  outdir: results
defaults:
  cpus: 1
  retries: 1
  env: {A: "1", B: "2"}
tasks:
  simulate:
    command: "python3 -c 'print(${steps})'"
    depends_on: [setup]
    cpus: 2
    memory: 1G
    gpus: 0
    nodes: 1
    walltime: 10m
    timeout: 5m
    qos: urgent
    deadline: 2m
    retries: 2
    backoff: 0.5
    checkpoint: true
    cache: true
    env: {B: "3", OMP_NUM_THREADS: "${steps}"}
    cwd: /data/${outdir}
  setup:
    command: ["mkdir", "-p", "${outdir}", 7]
"""


def test_mapping_form_reads_every_field(tmp_path: Path) -> None:
    wf = load_workflow(write(tmp_path, FULL))
    assert wf.name == "heat-study"
    assert list(wf.specs) == ["setup", "simulate"]  # dependencies first
    sim, setup = wf.specs["simulate"], wf.specs["setup"]
    assert sim.kind is TaskKind.SHELL and not sim.shell
    assert sim.command == ("python3", "-c", "print(100)")
    assert setup.command == ("mkdir", "-p", "results", "7")
    assert sim.deps == ("setup",)
    assert sim.resources.cpus == 2 and sim.resources.memory == 1024**3
    assert sim.resources.walltime == 600 and sim.timeout == 300 and sim.deadline == 120
    assert sim.qos is QoS.URGENT and setup.qos is QoS.REGULAR
    assert (sim.retry.retries, sim.retry.backoff) == (2, 0.5)
    assert sim.checkpoint and sim.cache and not setup.checkpoint
    assert sim.env == {"A": "1", "B": "3", "OMP_NUM_THREADS": "100"}
    assert sim.cwd == "/data/results" and setup.cwd is None
    assert setup.resources.cpus == 1 and setup.retry.retries == 1  # from defaults
    assert setup.env == {"A": "1", "B": "2"}


def test_list_form(tmp_path: Path) -> None:
    text = """
    name: listed
    tasks:
      - name: b
        command: echo b
        after: a
      - name: a
        command: echo a
      - name: c
        command: echo c
        depends_on: [a, b, a]
    """
    wf = load_workflow(write(tmp_path, text))
    assert list(wf.specs) == ["a", "b", "c"]
    assert wf.specs["c"].deps == ("a", "b")


def test_params_override_and_escape(tmp_path: Path) -> None:
    text = """
    name: p
    params: {steps: 100, flag: true}
    tasks:
      a:
        command: ["echo", "${steps}", "$${steps}", "${flag}", "$HOME"]
    """
    path = write(tmp_path, text)
    assert load_workflow(path).specs["a"].command == ("echo", "100", "${steps}", "true", "$HOME")
    wf = load_workflow(path, {"steps": "7 8"})
    assert wf.specs["a"].command == ("echo", "7 8", "${steps}", "true", "$HOME")


def test_undeclared_param_may_be_given_when_used(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\ntasks:\n  a: {command: 'echo ${who}'}\n")
    assert load_workflow(path, {"who": "me"}).specs["a"].command == ("echo", "me")


def test_shell_command_params_go_through_the_environment(tmp_path: Path) -> None:
    text = """
    name: s
    params: {msg: "a b; rm -rf x"}
    tasks:
      a:
        shell: true
        command: 'echo ${msg} "got: ${msg}" > out.txt'
    """
    spec = load_workflow(write(tmp_path, text)).specs["a"]
    assert spec.shell
    assert spec.command == ('echo "${HEXFLOW_PARAM_msg}" "got: ${HEXFLOW_PARAM_msg}" > out.txt',)
    assert spec.env["HEXFLOW_PARAM_msg"] == "a b; rm -rf x"


@pytest.mark.parametrize(
    "payload", ["$(touch {pwned})", "`touch {pwned}`", "'; touch {pwned}; '", '"; touch {pwned}; "']
)
def test_shell_params_cannot_inject_commands(tmp_path: Path, payload: str) -> None:
    pwned = tmp_path / "pwned"
    text = """
    name: inj
    params: {msg: x}
    tasks:
      a:
        shell: true
        command: 'echo "got: ${msg}" and ${msg} > out.txt'
    """
    wf = load_workflow(
        write(tmp_path, text), params={"msg": payload.format(pwned=pwned)}, workdir=tmp_path
    )
    settings = Settings.from_env(env={"HEXFLOW_HOME": str(tmp_path / ".hexflow")}, cwd=tmp_path)
    run = wf.run(settings=settings)
    assert run.ok, run
    assert not pwned.exists()
    expected = payload.format(pwned=pwned)
    assert (tmp_path / "out.txt").read_text() == f"got: {expected} and {expected}\n"


def test_shell_param_inside_single_quotes_is_an_error(tmp_path: Path) -> None:
    text = """
    name: s
    params: {msg: hi}
    tasks:
      a:
        shell: true
        command: "echo 'literal ${msg}'"
    """
    with pytest.raises(WorkflowFileError, match="inside single quotes"):
        load_workflow(write(tmp_path, text))


def test_yaml_merge_keys_and_anchors(tmp_path: Path) -> None:
    text = """
    name: m
    tasks:
      a: &big {command: echo, cpus: 4, memory: 2G}
      b: {<<: *big, cpus: 2}
    """
    wf = load_workflow(write(tmp_path, text))
    assert wf.specs["b"].resources.cpus == 2 and wf.specs["b"].resources.memory == 2 * 1024**3


def test_json_example_equals_yaml_example() -> None:
    from_yaml = load_workflow(EXAMPLES / "pipeline.yaml")
    from_json = load_workflow(EXAMPLES / "pipeline.json")
    assert from_yaml.name == from_json.name
    assert from_yaml.specs == from_json.specs
    assert list(from_yaml.specs) == list(from_json.specs)


def test_public_export() -> None:
    package: Any = hx
    assert package.load_workflow is load_workflow


@pytest.mark.skipif(shutil.which("python3") is None, reason="the example runs python3")
def test_example_pipeline_runs_end_to_end(tmp_path: Path) -> None:
    settings = Settings.from_env(env={"HEXFLOW_HOME": str(tmp_path / ".hexflow")}, cwd=tmp_path)
    wf = load_workflow(EXAMPLES / "pipeline.yaml", {"steps": "120"}, workdir=tmp_path)
    assert wf.workdir == tmp_path
    run = wf.run(settings=settings)
    assert run.ok, {t.id: (t.state, t.error) for t in run.tasks.values()}
    assert set(run.tasks) == {"setup", "simulate", "analyze", "profile", "check", "report"}
    results = tmp_path / "results"
    for name in ("field.txt", "stats.txt", "profile.txt", "report.txt"):
        assert (results / name).stat().st_size > 0, name
    assert "total=" in (results / "report.txt").read_text()


def test_docs_show_the_example_and_their_snippets_load(tmp_path: Path) -> None:
    doc = (EXAMPLES.parents[1] / "docs" / "yaml.md").read_text()
    blocks = doc.split("```yaml\n")[1:]
    example = blocks[0].split("```")[0]
    assert example == (EXAMPLES / "pipeline.yaml").read_text()
    listed = load_workflow(write(tmp_path, blocks[1].split("```")[0]))
    assert list(listed.specs) == ["fetch", "count"]
