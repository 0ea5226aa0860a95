"""--take-over and --restore-upstream wait on watches (kube/follow.until), not on one-second polls: they return on
the event that meets their condition, and a timeout still says what is left. The API is a fake that LISTs, then
streams scripted events once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from macvtapctl.errors import TimeoutExceeded
from macvtapctl.ops import switch
from macvtapctl.rules import device_plugins
from tests.unit.rules.test_device_plugins import pod, upstream_ds

NS = "kubevirt-macvtap"


class Kube:
    """LIST gives `items[plural]`; the first WATCH of a kind streams `events[plural]`, later ones see nothing."""

    def __init__(self, items: dict[str, list[dict[str, Any]]], events: dict[str, list[tuple[str, Any]]]) -> None:
        self.items, self.events = items, events
        self.watched: list[str] = []

    def list_with_version(self, res: Any, namespace: str | None = None, **kw: Any) -> tuple[list[dict[str, Any]], str]:
        return list(self.items.get(res.plural, [])), "1"

    def watch(self, res: Any, namespace: str | None = None, **kw: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        self.watched.append(res.plural)
        if self.watched.count(res.plural) == 1:
            time.sleep(0.05)  # after the LIST was evaluated
            yield from self.events.get(res.plural, [])
        else:
            time.sleep(0.05)


class Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def status(self, label: str, operation: str, suffix: str = "") -> None: ...

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warn(self, message: str) -> None: ...

    def error(self, message: str) -> None: ...


def ready(ds: dict[str, Any], n: int) -> dict[str, Any]:
    return {**ds, "status": {"observedGeneration": ds["metadata"]["generation"], "desiredNumberScheduled": n,
                             "numberReady": n, "updatedNumberScheduled": n}}


def test_take_over_returns_when_the_daemonset_and_its_pods_are_deleted() -> None:
    ds = upstream_ds(NS)
    p = device_plugins.of(ds)
    assert p is not None
    kube = Kube({"daemonsets": [ds], "pods": [pod(ds, "node-a")]},
                {"daemonsets": [("DELETED", ds)], "pods": [("DELETED", pod(ds, "node-a"))]})
    started = time.monotonic()
    switch._wait_gone(kube, p, ds, time.monotonic() + 10)  # type: ignore[arg-type]
    assert time.monotonic() - started < 2


def test_take_over_says_what_is_left_when_it_times_out() -> None:
    ds = upstream_ds(NS)
    p = device_plugins.of(ds)
    assert p is not None
    kube = Kube({"daemonsets": [ds], "pods": [pod(ds, "node-a"), pod(ds, "node-b")]},
                {"daemonsets": [("DELETED", ds)]})
    with pytest.raises(TimeoutExceeded) as caught:
        switch._wait_gone(kube, p, ds, time.monotonic() + 0.5)  # type: ignore[arg-type]
    assert caught.value.message == "the agent serves every node, but 2 of its pod(s) still run"


def test_give_back_reports_each_new_problem_and_returns_when_macvtap_cni_is_rolled_out() -> None:
    ds = upstream_ds(NS)
    half = {**ds, "status": {"observedGeneration": 2, "desiredNumberScheduled": 2, "numberReady": 1,
                             "updatedNumberScheduled": 2}}
    kube = Kube({"daemonsets": []}, {"daemonsets": [("ADDED", half), ("MODIFIED", ready(ds, 2))]})
    report = Report()
    switch._wait_upstream(kube, report, NS, ds, time.monotonic() + 10)  # type: ignore[arg-type]
    assert report.lines[0] == "waiting for macvtap-cni: its DaemonSet does not exist yet"
    assert report.lines[-1] == f"DaemonSet {NS}/macvtap-cni is ready on every node"
