"""Container options of a task (``image=``, ``mounts=``): checked when the task is defined,
in the Python API and in workflow files, with the field that is wrong."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import hexflow as hx
from hexflow.errors import SpecError, WorkflowFileError
from hexflow.flow.yamlspec import load_workflow
from hexflow.model import TaskKind, TaskSpec
from hexflow.model.container import Mount, check_image, normalize_mounts, parse_mount
from hexflow.settings import Settings


def spec(**kw: object) -> TaskSpec:
    kw.setdefault("command", ("true",))
    return TaskSpec(id="t", name="t", kind=TaskKind.SHELL, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- images
@pytest.mark.parametrize(
    "image",
    [
        "localhost/python:test",
        "busybox",
        "python:3.11-slim",
        "registry.example.org:5000/ns/app:v1.2",
        "ghcr.io/org/sub/app@sha256:" + "a" * 64,
        "docker.io/library/ubuntu:22.04@sha256:" + "0" * 64,
        "/images/app.sif",
        "./app.sif",
    ],
)
def test_image_references_and_files_are_accepted(image: str) -> None:
    assert check_image(image) == image
    assert spec(image=image).image == image


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("", "non-empty"),
        ("   ", "non-empty"),
        ("Python:3", "not an image reference"),  # repositories are lower case
        ("--privileged", "cannot start with '-'"),
        (" localhost/x", "remove the spaces"),
        ("a b", "not an image reference"),
        ("app:", "not an image reference"),
        ("app@sha256:xyz", "not an image reference"),
        (3, "non-empty string"),
    ],
)
def test_bad_images_are_refused_with_the_field(image: object, words: str) -> None:
    with pytest.raises(SpecError) as info:
        spec(image=image)
    assert words in str(info.value)
    assert info.value.fields["field"] == "image"


@given(st.text(min_size=1, max_size=40))
def test_an_image_never_starts_with_a_dash_or_holds_spaces(text: str) -> None:
    """Whatever passes could not be read by a runtime as an option or two arguments."""
    try:
        checked = check_image(text)
    except SpecError:
        return
    assert not checked.startswith("-")
    assert not any(c.isspace() or c == "\0" for c in checked)


# ---------------------------------------------------------------- mounts
def test_mounts_parse_and_normalize() -> None:
    assert parse_mount("data:/data") == Mount("data", "/data", False)
    assert parse_mount("/srv/in:/in:ro") == Mount("/srv/in", "/in", True)
    assert str(parse_mount("a:/b/../c/:rw")) == "a:/c:rw"
    assert normalize_mounts(["data:/data", "/x:/y:ro"]) == ("data:/data:rw", "/x:/y:ro")
    assert spec(image="busybox", mounts=["data:/data"]).mounts == ("data:/data:rw",)


@pytest.mark.parametrize(
    ("mount", "words"),
    [
        ("data", "two or three parts"),
        ("a:b:c:d", "two or three parts"),
        ("data:data", "must be absolute"),
        ("data:/data:rx", "'ro' or 'rw'"),
        (":/data", "host path is empty"),
        ("data:/", "cannot mount over /"),
        ("data:/proc/x", "cannot mount over /proc/x"),
        ("data:/dev", "cannot mount over /dev"),
        ("a,b:/data", "','"),
        ("a\0:/data", "NUL"),
        (5, "expected a string"),
    ],
)
def test_bad_mounts_are_refused(mount: object, words: str) -> None:
    with pytest.raises(SpecError) as info:
        spec(image="busybox", mounts=[mount])
    assert words in str(info.value)
    assert info.value.fields["field"] == "mounts"


def test_mount_lists_are_checked_as_a_whole() -> None:
    with pytest.raises(SpecError, match="two mounts at /data"):
        normalize_mounts(["a:/data", "b:/data/"])
    with pytest.raises(SpecError, match="a list of"):
        normalize_mounts("a:/data")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="mounts are given but no image"):
        spec(mounts=["a:/data"])


# ---------------------------------------------------------------- resources and env
def test_container_tasks_need_a_usable_memory_limit() -> None:
    with pytest.raises(SpecError, match="at least 6M") as info:
        spec(image="busybox", resources=hx.Resources.parse(memory="1M"))
    assert info.value.fields["field"] == "memory"
    assert spec(image="busybox", resources=hx.Resources.parse(memory="64M")).image
    assert spec(resources=hx.Resources.parse(memory="1M")).image is None  # bare: any limit


def test_container_env_names_must_be_portable() -> None:
    with pytest.raises(SpecError, match="cannot be passed into a container") as info:
        spec(image="busybox", env={"A*B": "x"})
    assert info.value.fields["field"] == "env"
    assert spec(image="busybox", env={"A_1": "x; $(reboot)"}).env == {"A_1": "x; $(reboot)"}


# ---------------------------------------------------------------- the spec in the store
def test_specs_pickle_with_their_container_fields() -> None:
    s = spec(image="localhost/base:test", mounts=["in:/in:ro"])
    assert pickle.loads(pickle.dumps(s)) == s


def test_a_spec_stored_before_the_container_fields_loads_with_defaults() -> None:
    old_state = spec().__getstate__()[:-2]  # what a store written before image/mounts holds
    loaded = object.__new__(TaskSpec)
    loaded.__setstate__(old_state)
    assert loaded.image is None and loaded.mounts == ()
    assert loaded == spec()


# ---------------------------------------------------------------- Python API
def test_decorators_take_image_and_mounts() -> None:
    @hx.shell(image="localhost/python:test", cpus=2, mounts=["data:/data:ro"])
    def render() -> list[str]:
        return ["ls", "/data"]

    @hx.task(image="localhost/python:test")
    def compute() -> int:
        return 1

    assert render.options.image == "localhost/python:test"
    assert render.options.mounts == ("data:/data:ro",)
    assert render.with_options(cpus=1).options.mounts == ("data:/data:ro",)
    with hx.Workflow("w") as wf:
        render()
        compute()
    specs = list(wf.specs.values())
    assert [s.image for s in specs] == ["localhost/python:test"] * 2
    assert specs[0].mounts == ("data:/data:ro",) and specs[0].kind is TaskKind.SHELL


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"image": "Not An Image"}, "image", "not an image reference"),
        ({"image": "busybox", "mounts": ["x:y"]}, "mounts", "must be absolute"),
        ({"mounts": ["x:/y"]}, "mounts", "no image"),
        ({"image": "busybox", "memory": "100K"}, "memory", "at least 6M"),
        ({"image": "busybox", "memory": "lots"}, "memory", "cannot read"),
        ({"image": "busybox", "cpus": -1}, "cpus", "must not be negative"),
    ],
)
def test_decorators_refuse_bad_container_options(
    options: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(SpecError) as info:
        hx.shell(**options)
    assert info.value.fields["field"] == field
    assert words in str(info.value)


# ---------------------------------------------------------------- workflow files
def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_yaml_image_and_mounts(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: boxed
        params:
          img: localhost/base:test
          indir: data
        defaults:
          image: ${img}
        tasks:
          a:
            command: ls /in
            mounts: ["${indir}:/in:ro", "out:/out"]
          b:
            command: [echo, hi]
            image: localhost/python:test
            after: a
        """,
    )
    wf = load_workflow(path)
    a, b = wf.specs["a"], wf.specs["b"]
    assert (a.image, a.mounts) == ("localhost/base:test", ("data:/in:ro", "out:/out:rw"))
    assert (b.image, b.mounts) == ("localhost/python:test", ())


@pytest.mark.parametrize(
    ("fields", "line", "where", "words"),
    [
        (["image: Bad Name"], 4, "tasks.a.image", "not an image reference"),
        (["image: [x]"], 4, "tasks.a.image", "expected a string"),
        (["image: busybox", "mounts: a:/b"], 5, "tasks.a.mounts", "a list of"),
        (["image: busybox", "mounts: [a:b]"], 5, "tasks.a.mounts[0]", "must be absolute"),
        (["image: busybox", "mounts: [1]"], 5, "tasks.a.mounts[0]", "'host:container"),
        (["mounts: [a:/b]"], 4, "tasks.a.mounts", "no image"),
    ],
)
def test_yaml_container_errors_name_line_and_field(
    tmp_path: Path, fields: list[str], line: int, where: str, words: str
) -> None:
    body = "name: x\ntasks:\n  a:\n" + "".join(f"    {f}\n" for f in fields)
    path = tmp_path / "flow.yaml"
    path.write_text(body + "    command: [true]\n")
    with pytest.raises(WorkflowFileError) as info:
        load_workflow(path)
    err = info.value
    assert words in str(err), str(err)
    assert (err.fields["line"], err.fields["field"]) == (line, where)


def test_yaml_memory_too_small_for_a_container_names_the_memory_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        name: x
        tasks:
          a:
            image: busybox
            memory: 1K
            command: [true]
        """,
    )
    with pytest.raises(WorkflowFileError) as info:
        load_workflow(path)
    assert info.value.fields["line"] == 5
    assert info.value.fields["field"] == "tasks.a.memory"


# ---------------------------------------------------------------- settings
def test_settings_choose_the_runtime_network_and_mount_roots(tmp_path: Path) -> None:
    s = Settings.from_env(env={"HEXFLOW_HOME": str(tmp_path / "h")}, cwd=tmp_path)
    assert s.container_runtime == "podman" and s.container_network == ""
    assert s.allowed_mount_roots == (tmp_path.resolve(), (tmp_path / "h").resolve())
    s = Settings.from_env(
        env={
            "HEXFLOW_CONTAINER_RUNTIME": "apptainer",
            "HEXFLOW_CONTAINER_NETWORK": "host",
            "HEXFLOW_MOUNT_ROOTS": f"{tmp_path}/a:{tmp_path}/b",
        },
        cwd=tmp_path,
    )
    assert (s.container_runtime, s.container_network) == ("apptainer", "host")
    assert s.allowed_mount_roots == (tmp_path / "a", tmp_path / "b")
    with pytest.raises(SpecError, match="unknown container runtime 'docker'"):
        Settings.from_env(env={"HEXFLOW_CONTAINER_RUNTIME": "docker"}, cwd=tmp_path)
    with pytest.raises(SpecError, match="none or host"):
        Settings.from_env(env={"HEXFLOW_CONTAINER_NETWORK": "bridge"}, cwd=tmp_path)


def test_cache_keys_tell_images_and_mounts_apart() -> None:
    from hexflow.engine.cache import cache_key

    bare = cache_key(spec(), {})
    boxed = cache_key(spec(image="localhost/base:test"), {})
    other = cache_key(spec(image="localhost/python:test"), {})
    mounted = cache_key(spec(image="localhost/base:test", mounts=["in:/in:ro"]), {})
    assert len({bare, boxed, other, mounted}) == 4
    assert cache_key(spec(image="localhost/base:test"), {}) == boxed
