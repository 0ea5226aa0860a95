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


class ReportsKube:
    """The agents' and macvtap-cni's pods, and each agent's node report per read (the last one repeats), as the pod
    proxy would return them; an exception is raised as the proxy's error."""

    def __init__(self, agents: list[str], upstream: list[str], reports: dict[str, list[Any]]) -> None:
        from tests.unit.rules.test_device_plugins import agent_ds

        self.ds = [ready(upstream_ds(NS), len(upstream))]
        agent = agent_ds(NS)
        self.pods = [{**pod(agent, n), "metadata": {**pod(agent, n)["metadata"],
                                                    "labels": {"app.kubernetes.io/name": "macvtapctl-agent"}}}
                     for n in agents]
        self.pods += [{**pod(self.ds[0], n), "metadata": {**pod(self.ds[0], n)["metadata"],
                                                          "labels": {"name": "macvtap-cni"}}} for n in upstream]
        self.reports = reports
        self.reads: dict[str, int] = {}

    def list(self, res: Any, namespace: str | None = None, label_selector: str = "", **kw: Any) -> list[dict[str, Any]]:
        if res.plural == "daemonsets":
            return self.ds
        wanted = dict(kv.split("=", 1) for kv in label_selector.split(",") if kv)
        return [p for p in self.pods if wanted.items() <= p["metadata"]["labels"].items()]

    def request(self, method: str, path: str, req: Any, query: Any = None) -> Any:
        name = path.split("/pods/", 1)[1].split(":", 1)[0]
        node = name.rsplit("-", 1)[1]
        seen = self.reads[node] = self.reads.get(node, -1) + 1
        got = self.reports[node][min(seen, len(self.reports[node]) - 1)]
        if isinstance(got, Exception):
            raise got
        return got


DP = "macvtap.network.kubevirt.io/dataplane"
ALONE = {"node": "n", "checks": [], "plugins": {DP: {"advertised": True, "ours": True, "others": []}}}
BESIDE = {"node": "n", "checks": [], "plugins": {DP: {"advertised": True, "ours": True, "others": [
    "/var/lib/kubelet/device-plugins/macvtap.network.kubevirt.io_dataplane"]}}}


def test_give_back_waits_until_every_kubelet_is_connected_to_macvtap_cnis_plugin(monkeypatch) -> None:
    """Issue 37 item 5: macvtap-cni rolled out is not registered (it registers 10 s after it starts); the agent
    stays until each node's report says the kubelet holds upstream's plugin for all it advertises."""
    from macvtapctl.errors import MacvtapctlError

    monkeypatch.setattr(switch, "REPORT_POLL", 0.01)
    kube = ReportsKube(["a", "b"], ["a", "b"], {"a": [ALONE, ALONE, BESIDE],
                                                "b": [MacvtapctlError("node checks have not run yet"), BESIDE]})
    report = Report()
    switch._wait_registered(kube, report, NS, time.monotonic() + 10)  # type: ignore[arg-type]
    assert report.lines == [
        f"waiting for macvtap-cni: registered with the kubelet on 0/2 node(s), not yet on a (for {DP}), b (its "
        "agent did not answer: node checks have not run yet)",
        f"waiting for macvtap-cni: registered with the kubelet on 1/2 node(s), not yet on a (for {DP})",
        "macvtap-cni is registered with the kubelet on 2/2 node(s)"]


def test_give_back_times_out_naming_the_nodes_and_leaves_the_agent(monkeypatch) -> None:
    monkeypatch.setattr(switch, "REPORT_POLL", 0.01)
    kube = ReportsKube(["a", "b"], ["a", "b"], {"a": [BESIDE], "b": [ALONE]})
    with pytest.raises(TimeoutExceeded) as caught:
        switch._wait_registered(kube, Report(), NS, time.monotonic() + 0.2)  # type: ignore[arg-type]
    assert caught.value.message == (f"macvtap-cni is rolled out but not registered with the kubelet on b (for {DP}); "
                                    "the agent was left running: run uninstall --restore-upstream again")


def test_give_back_without_pods_proxy_or_beside_an_older_agent_warns_and_goes_on() -> None:
    from macvtapctl.errors import ForbiddenError

    class Warnings(Report):
        def __init__(self) -> None:
            super().__init__()
            self.warnings: list[str] = []

        def warn(self, message: str) -> None:
            self.warnings.append(message)

    report = Warnings()
    kube = ReportsKube(["a"], ["a"], {"a": [ForbiddenError("forbidden")]})
    switch._wait_registered(kube, report, NS, time.monotonic() + 10)  # type: ignore[arg-type]
    assert report.warnings == ["cannot verify that the kubelets serve from macvtap-cni (reading the agents' node "
                               f"reports needs get pods/proxy in namespace {NS}): the agent leaves as macvtap-cni is "
                               "rolled out"]
    report = Warnings()
    kube = ReportsKube(["a", "c"], ["a"], {"a": [{"node": "a", "checks": []}], "c": [ALONE]})
    switch._wait_registered(kube, report, NS, time.monotonic() + 10)  # type: ignore[arg-type]
    assert report.warnings == [
        "cannot verify that the kubelet serves from macvtap-cni on a (its agent does not report its kubelet's "
        "plugins: an older agent)",
        "macvtap-cni does not run on c: macvtap is no longer served there once the agent leaves"]
    assert report.lines == []
