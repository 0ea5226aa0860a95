"""agent/migration_target.py's decisions without an API server (the real one: tests/integration/
test_agent_configmap_watch.py): only launcher pods are asked about, and no answer is never a target."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from macvtapctl.agent.apiserver import ApiUnavailable
from macvtapctl.agent.migration_target import TIMEOUT, TargetLookup
from macvtapctl.rules.launcher import MIGRATION_JOB_LABEL

LAUNCHER = ("vms", "virt-launcher-mover-x7k2p")


class Conn:
    def close(self) -> None:
        pass


class FakeApi:
    def __init__(self, answer: Any) -> None:
        self.answer, self.asked = answer, []

    def connect(self, method: str, path: str, *, timeout: float) -> tuple[Conn, io.BytesIO]:
        self.asked.append((method, path, timeout))
        if isinstance(self.answer, Exception):
            raise self.answer
        return Conn(), io.BytesIO(json.dumps(self.answer).encode())


def test_a_launcher_pod_is_read_by_name_once_and_its_label_decides() -> None:
    api = FakeApi({"metadata": {"labels": {MIGRATION_JOB_LABEL: "uid"}}})
    assert TargetLookup(api)(LAUNCHER) is True  # type: ignore[arg-type]
    assert api.asked == [("GET", "/api/v1/namespaces/vms/pods/virt-launcher-mover-x7k2p", TIMEOUT)]
    assert TargetLookup(FakeApi({"metadata": {"labels": {}}}))(LAUNCHER) is False  # type: ignore[arg-type]


@pytest.mark.parametrize("pod", [None, ("default", "web-0"), ("vms", "virt-launcher-mover")])
def test_other_pods_are_not_asked_about(pod: tuple[str, str] | None) -> None:
    api = FakeApi({"metadata": {"labels": {MIGRATION_JOB_LABEL: "uid"}}})
    assert TargetLookup(api)(pod) is False and api.asked == []  # type: ignore[arg-type]


def test_no_answer_attaches_up_and_is_said_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    lookup = TargetLookup(FakeApi(ApiUnavailable("HTTP 403: pods is forbidden", 403)))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        assert lookup(LAUNCHER) is False and lookup(LAUNCHER) is False
    [record] = caplog.records
    assert "get pods" in record.message and "attached up" in record.message
    lookup.api = FakeApi(ValueError("not JSON"))  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING):
        assert lookup(LAUNCHER) is False
    assert len(caplog.records) == 2
