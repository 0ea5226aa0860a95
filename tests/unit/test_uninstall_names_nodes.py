"""docs/install.md: `uninstall` waits for every node to clean up, and names the ones that did not finish (it used
to print only a count)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from macvtapctl.ops import uninstall as op
from macvtapctl.rules.daemonset import unfinished_nodes


def _pod(node: str, generation: str, ready: bool) -> dict[str, Any]:
    return {"metadata": {"name": f"agent-{node}", "labels": {"pod-template-generation": generation}},
            "spec": {"nodeName": node},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


DS = {"metadata": {"name": "macvtapctl-agent", "generation": 3, "resourceVersion": "1"},
      "spec": {"template": {"spec": {"containers": [{"name": "agent", "args": ["agent", "--uninstall"]}]}}},
      "status": {"observedGeneration": 3, "desiredNumberScheduled": 3, "numberReady": 2,
                 "updatedNumberScheduled": 1}}
PODS = [_pod("node-a", "3", True), _pod("node-b", "2", True), _pod("node-c", "3", False)]


def test_the_rule_names_nodes_not_ready_on_the_current_template() -> None:
    assert unfinished_nodes(DS, PODS) == ["node-b", "node-c"]
    assert unfinished_nodes(DS, [_pod("node-a", "3", True)]) == []


class Kube:
    """The API as until() reads it (LIST, then a WATCH that sees no change) and as the timeout's report does."""

    def list_with_version(self, res: Any, namespace: str | None = None, **kw: Any) -> tuple[list[dict[str, Any]], str]:
        return [DS], "1"

    def watch(self, res: Any, namespace: str | None = None, **kw: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        time.sleep(0.05)  # a watch the server ends with no event
        yield from ()

    def get(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        return DS

    def get_or_none(self, res: Any, name: str, namespace: str | None = None) -> dict[str, Any]:
        return DS

    def list(self, res: Any, namespace: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        assert kw["label_selector"] == "app.kubernetes.io/name=macvtapctl-agent,app.kubernetes.io/part-of=macvtapctl"
        return PODS


class Report:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def status(self, *a: Any) -> None: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def error(self, message: str) -> None: ...


def test_uninstall_names_the_nodes_that_did_not_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(op, "NODE_CLEANUP_TIMEOUT", 0.2)
    report = Report()
    op.clean_nodes(Kube(), report, "macvtap")  # type: ignore[arg-type]
    assert report.warnings == ["only 1/3 node(s) finished cleaning up within 0.2s; not finished: node-b, node-c; "
                               "those keep the shim and their links"]
