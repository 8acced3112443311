"""The pure parts of the data layer: tier settings, locations, manifests, metadata, the
transfer state machine and lifecycle rule evaluation (no files, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexflow.data.errors import DataInputError, DataNotFound
from hexflow.data.lifecycle import (
    DAY,
    KeepLast,
    ReplicaView,
    RunFinished,
    Unread,
    evaluate,
    parse_rules,
)
from hexflow.data.manifest import manifest_digest, search_text, version_pid
from hexflow.data.tiers import default_storage, parse_location, parse_storage
from hexflow.errors import InvalidTransition, SpecError
from hexflow.model.datasets import FileEntry, check_metadata, check_relpath, manifest_bytes
from hexflow.model.transfers import ItemState, TransferItem, TransferRecord, TransferState

# ------------------------------------------------------------------ settings and locations


def test_default_storage_has_the_four_tiers_as_directories() -> None:
    cfg = default_storage("/home/x/.hexflow")
    names = [t.name for t in cfg.local_tiers()]
    assert sorted(names) == ["archive", "offplatform", "pss", "qss"]
    assert cfg.tier("qss").root == "/home/x/.hexflow/tiers/qss"


def test_parse_storage_reads_posix_s3_quotas_and_other_sites() -> None:
    cfg = parse_storage(
        {
            "site": "perlmutter",
            "tiers": {
                "qss": {"path": "/scratch/qss", "capacity": "10T"},
                "offplatform": {"url": "s3://bucket/pre/fix", "endpoint_url": "http://s3:9000"},
                "archive": "/hpss",
            },
            "quotas": {"climate": {"qss": "100G"}},
            "sites": {"alcf": {"tiers": {"pss": {"path": "/eagle"}}}},
        },
        home="/h",
    )
    qss = cfg.tier("qss")
    assert qss.kind == "posix" and qss.capacity == 10 * 1024**4
    s3 = cfg.tier("offplatform")
    assert (s3.kind, s3.bucket, s3.prefix, s3.endpoint_url) == (
        "s3",
        "bucket",
        "pre/fix",
        "http://s3:9000",
    )
    assert cfg.tier("archive").root == "/hpss"
    assert cfg.tier("pss", "alcf").root == "/eagle"
    assert cfg.tier("pss").root == "/h/tiers/pss"  # a default tier not configured
    assert cfg.quota("climate", "qss") == 100 * 1024**3
    assert cfg.quota("climate", "pss") is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"tierz": {}}, "unknown key"),
        ({"tiers": {"qss": {"path": "/a", "url": "s3://b"}}}, "exactly one of"),
        ({"tiers": {"qss": {"url": "http://x"}}}, "expected s3://"),
        ({"tiers": {"Bad Name": {"path": "/a"}}}, "tier name"),
        ({"tiers": {"qss": {"path": "/a", "speed": 3}}}, "unknown key"),
        ({"quotas": {"p": {"nope": "1G"}}}, "no such tier"),
        ({"quotas": {"p": {"qss": "lots"}}}, "cannot read"),
        ({"lifecycle": "move it"}, "list of rules"),
    ],
)
def test_bad_storage_settings_say_what_to_fix(doc: dict[str, object], message: str) -> None:
    with pytest.raises(DataInputError, match=message):
        parse_storage(doc, home="/h")


def test_locations() -> None:
    cfg = default_storage("/h")
    loc = parse_location("qss:run1/out.h5", cfg)
    assert loc.tier is not None and loc.tier.name == "qss" and loc.path == "run1/out.h5"
    assert loc.key("climate") == "climate/run1/out.h5"
    assert parse_location("qss:", cfg).key("p") == "p"
    assert parse_location("pss@local:a/b/", cfg).path == "a/b/"
    local = parse_location("data/x.bin", cfg, cwd="/work")
    assert (
        local.is_local and local.path == "/work/data/x.bin" and local.key("p") == "work/data/x.bin"
    )
    assert parse_location("./qss:odd", cfg, cwd="/w").path == "/w/qss:odd"
    with pytest.raises(DataInputError, match="not a configured tier"):
        parse_location("nope:x", cfg)
    with pytest.raises(DataInputError, match="relative"):
        parse_location("qss:../etc/passwd", cfg)
    with pytest.raises(DataNotFound, match="no tier"):
        cfg.tier("qss", "elsewhere")


# ------------------------------------------------------------------ manifests and metadata


def test_identical_content_has_one_digest_whatever_the_order() -> None:
    a = [FileEntry("b.txt", 2, "blake3:02"), FileEntry("a.txt", 1, "blake3:01")]
    assert manifest_digest(a) == manifest_digest(list(reversed(a)))
    assert manifest_digest(a) != manifest_digest([*a[:1], FileEntry("a.txt", 1, "blake3:03")])
    assert manifest_bytes(a).startswith(b'["a.txt",1,')
    with pytest.raises(SpecError, match="twice"):
        manifest_bytes([a[0], a[0]])


@given(
    st.dictionaries(
        st.text(alphabet="abcdefgh/", min_size=1, max_size=12).filter(
            lambda p: not p.startswith("/") and "//" not in p and not p.endswith("/")
        ),
        st.integers(min_value=0, max_value=10**12),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=60, deadline=None)
def test_manifest_digest_is_a_function_of_the_set_of_files(files: dict[str, int]) -> None:
    entries = [FileEntry(p, s, f"blake3:{s:x}") for p, s in files.items()]
    assert manifest_digest(entries) == manifest_digest(sorted(entries, key=lambda e: -e.size))


def test_pid_depends_on_dataset_and_content() -> None:
    one = version_pid("p", "a", "blake3:00")
    assert one.startswith("urn:hexflow:") and one == version_pid("p", "a", "blake3:00")
    assert one != version_pid("p", "b", "blake3:00") != version_pid("p", "a", "blake3:01")


def test_relpaths_and_metadata_checks() -> None:
    assert check_relpath("./a//b/c.txt") == "a/b/c.txt"
    for bad in ("/etc", "a/../../b", ""):
        with pytest.raises(SpecError):
            check_relpath(bad)
    meta = check_metadata({"title": "T", "keywords": "one", "creators": ["A", "B"], "x": {"y": 1}})
    assert meta["keywords"] == ["one"] and meta["x"] == {"y": 1}
    with pytest.raises(SpecError, match="creators"):
        check_metadata({"creators": [1]})
    with pytest.raises(SpecError, match="title"):
        check_metadata({"title": 3})


def test_search_text_holds_name_parts_metadata_and_paths() -> None:
    text = search_text(
        "ocean_temp-v2", {"title": "Sea", "extra": {"site": "Argo"}}, [FileEntry("d/x.nc", 1, "h")]
    )
    for word in ("ocean", "temp", "Sea", "Argo", "x nc"):
        assert word in text


# ------------------------------------------------------------------ transfer state machine


def test_transfer_and_item_transitions() -> None:
    rec = TransferRecord(id="t", project="p", source="a", destination="b")
    rec.set_state(TransferState.RUNNING)
    rec.set_state(TransferState.QUEUED)  # interrupted by a crash
    rec.set_state(TransferState.RUNNING)
    rec.set_state(TransferState.FAILED)
    rec.set_state(TransferState.QUEUED)  # resumed
    rec.set_state(TransferState.RUNNING)
    rec.set_state(TransferState.SUCCEEDED)
    with pytest.raises(InvalidTransition, match="succeeded"):
        rec.set_state(TransferState.RUNNING)
    item = TransferItem(transfer_id="t", seq=0, src="a", dst="b", size=1)
    item.set_state(ItemState.COPYING)
    item.set_state(ItemState.DONE)
    with pytest.raises(InvalidTransition):
        item.set_state(ItemState.COPYING)


# ------------------------------------------------------------------ lifecycle rules


def view(name: str, number: int, tier: str, **kw: object) -> ReplicaView:
    base: dict[str, object] = {
        "project": "p",
        "name": name,
        "number": number,
        "tier": tier,
        "created_at": 0.0,
        "last_read_at": None,
        "producers": (),
        "tiers": frozenset({tier}),
    }
    base.update(kw)
    return ReplicaView(**base)  # type: ignore[arg-type]


def test_parse_rules_and_their_errors() -> None:
    tiers = ["qss", "pss", "archive"]
    rules = parse_rules(
        [
            {"rule": "run_finished", "from": "qss", "to": "pss"},
            {"rule": "unread", "days": 30, "from": "pss", "to": "archive"},
            {"rule": "keep_last", "versions": 5, "tier": "qss"},
        ],
        tiers,
    )
    assert rules == (RunFinished("qss", "pss"), Unread(30.0, "pss", "archive"), KeepLast(5, "qss"))
    for bad, message in [
        ({"rule": "sometimes"}, "unknown rule"),
        ({"rule": "run_finished", "from": "qss", "to": "tape"}, "not a tier"),
        ({"rule": "unread", "days": -1, "from": "pss"}, "days"),
        ({"rule": "keep_last", "versions": 0, "tier": "qss"}, "versions"),
        ({"rule": "keep_last", "versions": 2, "tier": "qss", "when": 1}, "unknown key"),
    ]:
        with pytest.raises(DataInputError, match=message):
            parse_rules([bad], tiers)


def test_run_finished_moves_outputs_of_finished_runs_only() -> None:
    replicas = [
        view("out", 1, "qss", producers=("run-a",)),
        view("out", 2, "qss", producers=("run-b",)),
    ]
    actions = evaluate(
        [RunFinished("qss", "pss")], replicas, finished_runs=frozenset({"run-a"}), now=0
    )
    assert [(a.kind, a.ref, a.src, a.dst) for a in actions] == [("move", "out@1", "qss", "pss")]


def test_unread_moves_after_n_days_and_reads_reset_the_clock() -> None:
    now = 100 * DAY
    replicas = [
        view("old", 1, "pss", created_at=10 * DAY),
        view("read", 1, "pss", created_at=10 * DAY, last_read_at=90 * DAY),
    ]
    actions = evaluate([Unread(30, "pss", "archive")], replicas, finished_runs=frozenset(), now=now)
    assert [(a.ref, a.kind, a.dst) for a in actions] == [("old@1", "move", "archive")]
    assert "90.0 days" in actions[0].reason


def test_keep_last_never_deletes_the_only_replica() -> None:
    replicas = [view("d", n, "qss", tiers=frozenset({"qss", "pss"})) for n in (1, 2, 3)]
    replicas.append(view("d", 0, "qss"))  # only on qss
    actions = evaluate([KeepLast(2, "qss")], replicas, finished_runs=frozenset(), now=0)
    got = {(a.ref, a.kind) for a in actions}
    assert got == {("d@1", "delete"), ("d@0", "skip")}


def test_a_move_to_a_tier_that_has_it_already_is_a_delete_and_first_rule_wins() -> None:
    replicas = [view("d", 1, "qss", producers=("r",), tiers=frozenset({"qss", "pss"}))]
    rules = [RunFinished("qss", "pss"), KeepLast(1, "qss")]
    actions = evaluate(rules, replicas, finished_runs=frozenset({"r"}), now=0)
    assert [(a.kind, a.rule) for a in actions] == [("delete", "run_finished: qss → pss")]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(1, 4),
            st.sets(st.sampled_from(["qss", "pss", "archive"]), min_size=1),
            st.floats(0, 100),
        ),
        max_size=12,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.integers(1, 3),
    st.floats(0, 60),
)
@settings(max_examples=150, deadline=None)
def test_rules_never_leave_a_version_without_a_replica(
    versions: list[tuple[str, int, set[str], float]], keep: int, days: float
) -> None:
    replicas = [
        view(name, n, tier, tiers=frozenset(tiers), created_at=age * DAY, producers=("r",))
        for name, n, tiers, age in versions
        for tier in sorted(tiers)
    ]
    rules = [
        RunFinished("qss", "pss"),
        Unread(days, "pss", None),
        KeepLast(keep, "archive"),
        Unread(days, "archive", None),
    ]
    actions = evaluate(rules, replicas, finished_runs=frozenset({"r"}), now=200 * DAY)
    held = {(n, v): set(t) for n, v, t, _ in versions}
    for a in actions:
        name, number = a.ref.split("@")
        key = (name, int(number))
        if a.kind == "delete":
            held[key].discard(a.src)
        elif a.kind == "move":
            held[key].discard(a.src)
            held[key].add(str(a.dst))
    assert all(held.values()), "a version lost its last replica"
