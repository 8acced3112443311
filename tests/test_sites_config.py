"""The sites file, site options of tasks (Python and YAML), site states and
``hexflow sites``: what is accepted, and clear errors for what is not."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

import hexflow as hx
from hexflow.errors import SpecError, WorkflowFileError
from hexflow.flow.sites import DOWN_AFTER, Overrides, SiteMonitor
from hexflow.flow.wire import decode_workflow, encode_workflow
from hexflow.flow.yamlspec import load_workflow
from hexflow.model.sites import (
    Health,
    Outage,
    SiteOverride,
    SiteSpec,
    SiteState,
    parse_sites,
    site_state,
)
from hexflow.scheduler.sites import SiteView, choose_site
from hexflow.settings import Settings
from tests.helpers import run_cli

GOOD = {
    "check_interval": "1s",
    "sites": {
        "perlmutter": {
            "executor": "slurm",
            "priority": 10,
            "projects": ["m1234"],
            "slurm": {"partition": "regular", "account": "m1234", "poll": "2s"},
            "pools": [{"name": "cpu", "nodes": 3072, "cpus": 128, "memory": "512G"}],
            "storage": ["qss", "pss"],
            "outages": [
                {"start": "2026-12-01T08:00:00+00:00", "end": 1796457600, "reason": "upgrade"}
            ],
        },
        "laptop": {"executor": "local", "local": {"cpus": 2, "memory": "4G"}},
        "pilots": {"executor": "pilot", "pilot": {"cpus": 16, "walltime": "2h", "max_pilots": 8}},
    },
}


def test_a_good_sites_file_is_read_whole() -> None:
    config = parse_sites(GOOD, "sites.yaml")
    assert config.names() == ["perlmutter", "laptop", "pilots"] and config.check_interval == 1
    hpc = config.get("perlmutter")
    assert hpc.priority == 10 and hpc.projects == {"m1234"} and hpc.storage == ("qss", "pss")
    assert hpc.options == {"partition": "regular", "account": "m1234", "poll": 2.0}
    assert hpc.pools[0].memory == 512 * 2**30 and hpc.pools[0].nodes == 3072
    assert hpc.outages[0].start == 1796112000.0 and hpc.outages[0].reason == "upgrade"
    assert config.get("laptop").options == {"cpus": 2.0, "memory": 4 * 2**30}
    assert config.get("pilots").options["walltime"] == 7200.0
    assert hpc.allows("m1234") and not hpc.allows("m9") and config.get("laptop").allows(None)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "sites: no site is described"),
        ({"sites": {"a": {"executor": "lsf"}}}, "sites.a.executor: expected one of local"),
        ({"sites": {"9a": {"executor": "local"}}}, "'9a' is not a site name"),
        ({"sites": {"a": {"executor": "local", "priorty": 1}}}, "did you mean 'priority'"),
        ({"sites": {"a": {"executor": "local", "slurm": {}}}}, "takes a `local:` block"),
        (
            {"sites": {"a": {"executor": "slurm", "slurm": {"partiton": "x"}}}},
            "sites.a.slurm.partiton: unknown key",
        ),
        (
            {"sites": {"a": {"executor": "slurm", "slurm": {"poll": "soon"}}}},
            "sites.a.slurm.poll: cannot read 'soon' as a duration",
        ),
        (
            {"sites": {"a": {"executor": "local", "outages": [{"start": "tomorrow"}]}}},
            "sites.a.outages[0].start: expected Unix seconds or an ISO 8601 time",
        ),
        (
            {"sites": {"a": {"executor": "local", "outages": [{"start": 10, "end": 5}]}}},
            "the outage ends",
        ),
        ({"sites": {"a": {"executor": "local", "priority": "high"}}}, "expected a whole number"),
        (
            {"sites": {"a": {"executor": "local", "pools": [{"name": "p", "nodes": 0}]}}},
            "a pool has at least one node",
        ),
        ({"sites": ["a"]}, "sites: expected a mapping"),
        ({"site": {}}, "site: unknown key; did you mean 'sites'?"),
    ],
)
def test_a_bad_sites_file_says_what_and_where(doc: Any, message: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_sites(doc, "sites.yaml")
    assert err.value.message.startswith("sites.yaml: ") and message in err.value.message


def test_hexflow_sites_env_points_at_a_file_that_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    path.write_text("sites:\n  a:\n    executor: local\n    local: {cpus: 2}\n")
    settings = Settings.from_env({"HEXFLOW_SITES": str(path)}, cwd=tmp_path)
    assert settings.sites is not None and settings.sites.names() == ["a"]
    with pytest.raises(SpecError, match="cannot read"):
        Settings.from_env({"HEXFLOW_SITES": str(tmp_path / "missing.yaml")}, cwd=tmp_path)
    path.write_text("sites: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        Settings.from_env({"HEXFLOW_SITES": str(path)}, cwd=tmp_path)


def test_pilot_settings_from_the_environment_are_checked(tmp_path: Path) -> None:
    env = {"HEXFLOW_EXECUTOR": "pilot", "HEXFLOW_PILOT_CPUS": "8", "HEXFLOW_PILOT_WALLTIME": "1h"}
    settings = Settings.from_env(env, cwd=tmp_path)
    assert settings.executor.pilot == {"cpus": 8, "walltime": 3600.0}
    with pytest.raises(SpecError, match="HEXFLOW_PILOT_CPUS: expected a whole number"):
        Settings.from_env({**env, "HEXFLOW_PILOT_CPUS": "many"}, cwd=tmp_path)
    with pytest.raises(SpecError, match="walltime"):
        Settings.from_env({**env, "HEXFLOW_PILOT_WALLTIME": "forever"}, cwd=tmp_path)


# ---------------------------------------------------------------- site options of tasks
def test_site_options_of_python_tasks() -> None:
    @hx.task(site="perlmutter")
    def pinned() -> None: ...

    @hx.task(sites=["perlmutter", "laptop", "perlmutter"])
    def either() -> None: ...

    assert pinned.options.sites == ("perlmutter",)
    assert either.options.sites == ("perlmutter", "laptop")
    assert either.with_options(site="laptop").options.sites == ("laptop",)
    with hx.Workflow("w") as wf:
        pinned()
    assert next(iter(wf.specs.values())).sites == ("perlmutter",)
    with pytest.raises(SpecError, match="not both"):
        hx.task(site="a", sites=["b"])(lambda: None)
    with pytest.raises(SpecError, match="is not a site name"):
        hx.task(site="bad name")(lambda: None)
    with pytest.raises(SpecError, match="takes a list of site names"):
        hx.task(sites="perlmutter")(lambda: None)
    with pytest.raises(SpecError, match="sites= is empty"):
        hx.task(sites=[])(lambda: None)
    with pytest.raises(SpecError, match="did you mean 'site'"):
        hx.task(sitee="a")(lambda: None)


def test_site_options_in_yaml_with_lines_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(
        textwrap.dedent(
            """\
            name: w
            defaults: {sites: [perlmutter, laptop]}
            tasks:
              a: {command: "true"}
              b: {command: "true", site: laptop}
            """
        )
    )
    wf = load_workflow(good)
    assert wf.specs["a"].sites == ("perlmutter", "laptop") and wf.specs["b"].sites == ("laptop",)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: w\ntasks:\n  a:\n    command: 'true'\n    site: 'two words'\n")
    with pytest.raises(WorkflowFileError) as err:
        load_workflow(bad)
    assert "bad.yaml:5" in str(err.value) and "tasks.a.site" in str(err.value)
    bad.write_text("name: w\ntasks:\n  a:\n    command: 'true'\n    site: x\n    sites: [y]\n")
    with pytest.raises(WorkflowFileError, match="give site or sites, not both"):
        load_workflow(bad)


def test_sites_cross_the_wire_and_old_documents_still_load() -> None:
    def one() -> int:
        return 1

    wf = hx.Workflow("w")
    with wf:
        hx.task(site="laptop")(one)()
    name, specs = decode_workflow(encode_workflow("w", wf.specs.values()).decode())
    assert specs[0].sites == ("laptop",)
    doc = json.loads(encode_workflow("w", wf.specs.values()))
    del doc["tasks"][0]["sites"]
    assert decode_workflow(json.dumps(doc))[1][0].sites == ()


# ---------------------------------------------------------------- states and selection
def test_state_precedence_override_then_outage_then_health() -> None:
    spec = SiteSpec("a", "slurm", outages=(Outage(100.0, 200.0, "upgrade"),))
    sick = Health(SiteState.DEGRADED, "1 of 4 nodes down")
    assert site_state(spec, sick, None, 50.0) == (SiteState.DEGRADED, "1 of 4 nodes down")
    state, why = site_state(spec, sick, None, 150.0)
    assert state is SiteState.DOWN and "planned outage" in why and "upgrade" in why
    override = SiteOverride(SiteState.UP, "we know", 0.0)
    assert site_state(spec, sick, override, 150.0)[0] is SiteState.UP
    assert site_state(spec, None, None, 250.0) == (SiteState.UP, "")


def test_choose_site_prefers_up_then_priority_then_load_and_says_why_not() -> None:
    up_low = SiteView("low", SiteState.UP, priority=0)
    up_high = SiteView("high", SiteState.UP, priority=5, load=3.0)
    degraded = SiteView("sick", SiteState.DEGRADED, priority=9)
    down = SiteView("dead", SiteState.DOWN, priority=99)
    assert choose_site([up_low, up_high, degraded, down], None, 0.0)[0] == "high"
    assert choose_site([degraded, down], None, 0.0)[0] == "sick"
    busy = SiteView("busy", SiteState.UP, priority=5, load=9.0)
    assert choose_site([busy, up_high], None, 0.0)[0] == "high"
    draining = SiteView("soon", SiteState.UP, outage_start=100.0, default_walltime=60.0)
    assert choose_site([draining], 30.0, 0.0)[0] == "soon"
    assert choose_site([draining], None, 0.0)[0] == "soon"  # default 60 s ends by 100
    name, why = choose_site([draining, down], 200.0, 0.0)
    assert name is None and "drains for its planned outage in 100 s" in why and "dead" in why


def test_a_failing_health_check_degrades_then_downs_the_site(tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky() -> Health:
        calls["n"] += 1
        if calls["n"] <= DOWN_AFTER:
            raise OSError("controller not answering")
        return Health(SiteState.UP, "fine")

    monitor = SiteMonitor([SiteSpec("a", "slurm")], {"a": flaky}, Overrides(tmp_path))
    assert monitor.observe(0.0)["a"][0] is SiteState.DEGRADED
    state, why = monitor.observe(0.0)["a"]
    assert state is SiteState.DOWN and "controller not answering" in why
    assert monitor.observe(0.0)["a"] == (SiteState.UP, "fine")


# ---------------------------------------------------------------- hexflow sites
def test_hexflow_sites_lists_sets_and_clears(tmp_path: Path) -> None:
    path = tmp_path / "sites.yaml"
    path.write_text(
        "sites:\n"
        "  a: {executor: local, priority: 5}\n"
        "  b:\n"
        "    executor: local\n"
        "    outages: [{start: 4102444800, reason: far future}]\n"
    )
    env = {**os.environ, "HEXFLOW_HOME": str(tmp_path / "h"), "HEXFLOW_SITES": str(path)}
    listed = run_cli(tmp_path, env, "sites", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["a"]["state"] == "up" and rows["a"]["priority"] == 5
    assert rows["b"]["outages"][0]["status"] == "planned"
    done = run_cli(tmp_path, env, "sites", "set", "a", "down", "--reason", "disk full")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(run_cli(tmp_path, env, "sites", "--json").stdout)}
    assert rows["a"]["state"] == "down" and "disk full" in rows["a"]["reason"]
    assert rows["a"]["override"]["state"] == "down"
    table = run_cli(tmp_path, env, "sites")
    assert "down" in table.stdout and "disk full" in table.stdout
    assert run_cli(tmp_path, env, "sites", "clear", "a").returncode == 0
    rows = {r["name"]: r for r in json.loads(run_cli(tmp_path, env, "sites", "--json").stdout)}
    assert rows["a"]["state"] == "up" and rows["a"]["override"] is None
    unknown = run_cli(tmp_path, env, "sites", "set", "zeta", "down")
    assert unknown.returncode == 2 and "no site 'zeta'" in unknown.stderr
    bad_state = run_cli(tmp_path, env, "sites", "set", "a", "sideways")
    assert bad_state.returncode == 2 and "up, degraded or down" in bad_state.stderr
    path.write_text("sites: {a: {executor: cloud}}\n")
    broken = run_cli(tmp_path, env, "sites")
    assert broken.returncode == 2 and "sites.a.executor" in broken.stderr
