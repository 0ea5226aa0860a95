"""DP_MACVTAP_CONF read as upstream's device plugin reads it (issue 13.1): the drop-in table, row by row.

Each row: a document upstream accepts, what it serves (measured: `make compat` runs the same documents through
upstream's device plugin), and the warning kind the agent counts in /metrics.
"""

from __future__ import annotations

import json

import pytest

from macvtapctl.rules import dpconfig
from macvtapctl.rules.dpconfig import Entry

E0 = Entry("dp", "eth0")


@pytest.mark.parametrize(("text", "served", "kinds"), [
    ('[{"name": "dp", "lowerDevice": "eth0"},]', [E0], ["trailing_comma"]),
    ('[{"name": "dp", "lowerDevice": "eth0", "comment": "rack 4"}]', [E0], ["unknown_key"]),
    ('[{"Name": "dp", "LowerDevice": "eth0", "CAPACITY": 3}]', [Entry("dp", "eth0", capacity=3)], ["key_case"]),
    ('[{"name": "dp", "lowerDevice": "eth1"}, {"name": "dp", "lowerDevice": "eth0"}]', [E0], ["duplicate_name"]),
    ('[{"name": "dp", "lowerDevice": "eth0", "capacity": 0}]', [E0], ["capacity_zero"]),
    ('[{"name": "dp", "lowerDevice": "eth0", "capacity": null, "mode": null}]', [E0], ["capacity_zero"]),
    ('[{"name": "x", "lowerDevice": "eth0", "name": "dp"}]', [E0], ["duplicate_key"]),
    ("null", [], ["null_document"]),
    ('[{"name": "dp", "lowerDevice": "eth0", "mode": ""}]', [E0], []),
    ('[{"name": "dp", "lowerDevice": "eth0", "mode": "passthru", "capacity": 8}]',
     [Entry("dp", "eth0", "passthru", 1)], ["passthru_capacity"]),
    ('[{"name": "dp", "lowerDevice": "eth0", "mode": "passthru"}]', [Entry("dp", "eth0", "passthru", 1)], []),
])
def test_what_upstream_accepts_is_served_with_a_warning(text: str, served: list[Entry], kinds: list[str]) -> None:
    cfg = dpconfig.parse(text)
    assert dpconfig.usable_entries(cfg) == (served, [])
    assert [n.kind for n in cfg.notices] == kinds
    assert set(kinds) <= set(dpconfig.TOLERATED_KINDS)


@pytest.mark.parametrize(("item", "needle"), [
    ({"name": "dp", "master": "eth0"}, "key 'master' is not read by the device plugin: write 'lowerDevice'"),
    ({"name": "", "lowerDevice": "eth0"}, "missing name"),
    ({"lowerDevice": "eth0"}, "missing name"),
    ({"name": "dp", "lowerDevice": "eth0", "mode": "source"}, "mode 'source' is not one of"),
    ({"name": "dp", "lowerDevice": "eth0", "capacity": -1}, "capacity -1"),
    ({"name": "dp", "lowerDevice": "eth0", "capacity": "10"}, "capacity '10'"),
    ({"name": "dp", "lowerDevice": "eth/0"}, "lowerDevice 'eth/0'"),
])
def test_what_upstream_silently_serves_nothing_for_is_refused_by_name(item: dict, needle: str) -> None:
    cfg = dpconfig.parse(json.dumps([item, {"name": "ok", "lowerDevice": "eth1"}]))
    served, refused = dpconfig.usable_entries(cfg)
    assert served == [Entry("ok", "eth1")]
    assert len(refused) == 1 and needle in refused[0] and refused[0].endswith("(entry refused)")


def test_the_last_of_a_duplicated_name_wins_even_when_it_is_refused() -> None:
    """Upstream keeps the last entry of a name; serving the earlier one instead would be a different config."""
    cfg = dpconfig.parse('[{"name": "dp", "lowerDevice": "eth0"}, {"name": "dp", "master": "eth1"}]')
    served, refused = dpconfig.usable_entries(cfg)
    assert served == [] and "master" in refused[0]


@pytest.mark.parametrize(("text", "needle"), [
    ('[{"name": "dp"} {"name": "x"}]', "Expecting ',' delimiter at line 1 column 17"),
    ('{"name": "dp"}', "must be a JSON array of entries, not an object"),
    ('[1]', "entry 0 is not a JSON object but a number"),
    ('[{"name": NaN}]', "NaN is not valid JSON"),
])
def test_documents_without_a_reading_are_refused_whole(text: str, needle: str) -> None:
    with pytest.raises(dpconfig.MalformedConfigError) as info:
        dpconfig.parse(text)
    assert needle in info.value.message and "will not overwrite it" in info.value.message


def test_a_rewrite_is_plain_json_with_everyone_elses_values_kept() -> None:
    cfg = dpconfig.parse('[{"Name": "a", "LowerDevice": "eth0", "note": [1, {"k": 2}]},\n]')
    new, op = dpconfig.upsert(cfg, Entry("b", "eth1"))
    assert op == "created"
    assert json.loads(new.render()) == [{"name": "a", "lowerDevice": "eth0", "note": [1, {"k": 2}]},
                                        Entry("b", "eth1").to_json()]


def test_upsert_of_an_identical_entry_in_a_document_needing_a_rewrite_is_not_unchanged() -> None:
    text = json.dumps([Entry("b", "eth1").to_json()])
    assert dpconfig.upsert(dpconfig.parse(text), Entry("b", "eth1"))[1] == "unchanged"
    assert dpconfig.upsert(dpconfig.parse(text[:-1] + ",]"), Entry("b", "eth1"))[1] == "configured"
