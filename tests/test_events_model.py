"""Pure parts of events, functions and triggers: kind patterns, trigger configs, the
invocation state machine, webhook signatures, schedule ticks, rate limits."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hexflow.errors import AuthError, InvalidTransition, SpecError
from hexflow.events.functions.limits import RateLimiter
from hexflow.events.triggers import schedules, webhooks
from hexflow.model.events import Event, data_matches, kind_matches, valid_kind_pattern
from hexflow.model.functions import Invocation, InvocationState, SourceKind, check_function_fields
from hexflow.model.triggers import Trigger, TriggerKind, check_trigger_config


def _event(kind: str = "run.succeeded", project: str | None = "p1", **data: object) -> Event:
    return Event(7, kind, project, "run1", 1.0, dict(data))


def test_kind_patterns() -> None:
    assert kind_matches("task.failed", "task.failed")
    assert kind_matches("task.*", "task.running") and not kind_matches("task.*", "run.failed")
    assert kind_matches("*", "webhook.received")
    assert valid_kind_pattern("run.succeeded") and valid_kind_pattern("function.*")
    assert not valid_kind_pattern("run.sucess") and not valid_kind_pattern("nothing.*")


def test_event_triggers_match_kind_project_and_fields() -> None:
    t = Trigger(
        "t1",
        "p1",
        "n",
        TriggerKind.EVENT,
        "f",
        config={"kinds": ["run.*"], "where": {"subject": "run1"}},
    )
    assert t.matches(_event())
    assert not t.matches(_event(project="p2"))  # another project's event never fires it
    assert not t.matches(_event(kind="task.failed"))
    assert not t.matches(Event(8, "run.failed", "p1", "run2", 1.0, {}))
    assert data_matches({"state": "x"}, _event(state="x"))
    t.enabled = False
    assert not t.matches(_event())


def test_source_triggers_match_only_their_own_events() -> None:
    hook = Trigger("h1", "p1", "n", TriggerKind.WEBHOOK, "f")
    assert hook.matches(_event("webhook.received", trigger="h1"))
    assert not hook.matches(_event("webhook.received", trigger="h2"))
    assert not hook.matches(_event("file.arrived", trigger="h1"))


@pytest.mark.parametrize(
    ("kind", "config", "field"),
    [
        (TriggerKind.EVENT, {}, "config.kinds"),
        (TriggerKind.EVENT, {"kinds": ["run.sucess"]}, "config.kinds.0"),
        (TriggerKind.FILE, {"pattern": "*"}, "config.path"),
        (TriggerKind.SCHEDULE, {}, "config.cron"),
        (TriggerKind.SCHEDULE, {"every": -1}, "config.every"),
        (TriggerKind.WEBHOOK, {"secret": "x"}, "config.secret"),
    ],
)
def test_bad_trigger_configs_name_the_field(kind: TriggerKind, config: dict, field: str) -> None:
    with pytest.raises(SpecError) as info:
        check_trigger_config(kind, config)
    assert info.value.fields["field"] == field


def test_trigger_config_defaults() -> None:
    assert check_trigger_config(TriggerKind.FILE, {"path": "/x"})["stable_for"] == 0.1
    assert check_trigger_config(TriggerKind.WEBHOOK, {})["tolerance"] == 300
    assert check_trigger_config(TriggerKind.EVENT, {"kinds": "run.failed"})["kinds"] == [
        "run.failed"
    ]


def test_invocation_state_machine() -> None:
    inv = Invocation("i", "p1", "f", 1)
    inv.set_state(InvocationState.RUNNING)
    inv.set_state(InvocationState.QUEUED)  # lost by a crash: runs again
    inv.set_state(InvocationState.RUNNING)
    inv.set_state(InvocationState.SUCCEEDED)
    assert inv.state.terminal
    with pytest.raises(InvalidTransition):
        inv.set_state(InvocationState.RUNNING)
    err = pickle.loads(pickle.dumps(InvalidTransition("x", invocation="i")))
    assert err.fields == {"invocation": "i"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "1bad"}, "name"),
        ({"target": "no colon"}, "import_path"),
        ({"env": {"1X": "a"}}, "env.1X"),
        ({"timeout": 0}, "timeout"),
        ({"min_workers": 5, "max_workers": 2}, "max_workers"),
    ],
)
def test_function_fields(changes: dict, field: str) -> None:
    kw = {
        "name": "f",
        "kind": SourceKind.IMPORT,
        "target": "m:f",
        "source": None,
        "env": {},
        "cpus": 1.0,
        "timeout": 10.0,
        "min_workers": 1,
        "max_workers": 2,
    }
    check_function_fields(**kw)  # type: ignore[arg-type]
    with pytest.raises(SpecError) as info:
        check_function_fields(**{**kw, **changes})  # type: ignore[arg-type]
    assert info.value.fields["field"] == field


def test_webhook_signatures() -> None:
    secret = webhooks.new_secret()
    body = b'{"a": 1}'
    headers = webhooks.signed_headers(secret, body, timestamp=1000.0, nonce="n" * 16)
    ok = {
        "timestamp": headers[webhooks.TIMESTAMP],
        "nonce": headers[webhooks.NONCE],
        "sig": headers[webhooks.SIGNATURE],
    }
    assert webhooks.check(secret, **ok, body=body, now=1010.0, tolerance=300) == 1000.0
    for changed, what in [
        ({"body": b"{}"}, webhooks.SIGNATURE),
        ({"now": 2000.0}, webhooks.TIMESTAMP),
        ({"sig": None}, None),
    ]:
        args = {**ok, "body": body, "now": 1010.0, **changed}
        with pytest.raises(AuthError) as info:
            webhooks.check(secret, tolerance=300, **args)  # type: ignore[arg-type]
        assert info.value.fields.get("field") == what
    with pytest.raises(AuthError):
        webhooks.check("other", **ok, body=body, now=1010.0, tolerance=300)


@given(st.floats(0, 1e6), st.floats(0.5, 1e4))
def test_interval_ticks_are_strictly_later_and_on_the_grid(after: float, every: float) -> None:
    created = 100.0
    tick = schedules.next_tick({"every": every}, after, created)
    assert tick > after or tick == created + every
    k = (tick - created) / every
    assert abs(k - round(k)) < 1e-6 and round(k) >= 1


def test_cron_ticks() -> None:
    base = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    tick = schedules.next_tick({"cron": "*/5 * * * *"}, base, 0.0)
    assert tick > base and tick % 300 == 0 and tick - base <= 300
    assert schedules.last_tick({"cron": "*/5 * * * *"}, base, 0.0) == tick - 300
    schedules.check_cron("0 3 * * mon")
    with pytest.raises(SpecError):
        schedules.check_cron("every day")


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(rate=10, burst=2)
    assert limiter.take("p", 0.0) == 0 and limiter.take("p", 0.0) == 0
    wait = limiter.take("p", 0.0)
    assert wait == pytest.approx(0.1)
    assert limiter.take("other", 0.0) == 0  # per project
    assert limiter.take("p", 0.1) == 0
