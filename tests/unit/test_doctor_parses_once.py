"""doctor asks for the ConfigMap in effect per VM and per node (doctor.config_of); its JSON is parsed once per
text, not once per question (at 5,000 VMs the re-parsing made doctor -A and status 2.5-3.3x kubectl)."""

from __future__ import annotations

import json

import pytest

from macvtapctl.rules import doctor, dpconfig


def _snapshot(entries: str) -> doctor.Snapshot:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": dpconfig.CONFIGMAP_NAME, "namespace": "macvtap", "resourceVersion": "1"},
          "data": {dpconfig.CONFIG_KEY: entries}}
    return doctor.Snapshot(configmaps=[cm])


def test_the_config_is_parsed_once_per_text(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str | None] = []
    real = dpconfig.parse

    def counting(text: str | None, *, where: str = dpconfig.CONFIG_KEY) -> dpconfig.Config:
        calls.append(text)
        return real(text, where=where)

    monkeypatch.setattr(dpconfig, "parse", counting)
    doctor._parsed.cache_clear()
    one = json.dumps([{"name": "lan0", "lowerDevice": "eth0"}])
    s = _snapshot(one)
    results = [doctor.config_of(s) for _ in range(100)]
    assert len(calls) == 1
    assert all(r[1] is results[0][1] for r in results) and [i["name"] for i in results[0][1].items] == ["lan0"]

    two = json.dumps([{"name": "lan1", "lowerDevice": "eth1"}])  # the ConfigMap changed: parsed again
    assert [i["name"] for i in doctor.config_of(_snapshot(two))[1].items] == ["lan1"]
    assert len(calls) == 2


def test_a_malformed_config_is_reported_every_time_it_is_asked() -> None:
    doctor._parsed.cache_clear()
    s = _snapshot("[{")
    first, second = doctor.config_of(s), doctor.config_of(s)
    assert first[1] is None and first[2] and first[2] == second[2]
