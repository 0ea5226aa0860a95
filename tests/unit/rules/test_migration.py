"""`vm migrate`'s checks (macvtapctl/migration.py) on plain objects: each can fail, and says why."""

from __future__ import annotations

from typing import Any

from macvtapctl.rules import migration

PREFIX = "macvtap.network.kubevirt.io"
BINDINGS = {"macvtap": {"domainAttachmentType": "tap"}}


def vmi(*, phase: str = "Running", node: str = "a", mac: str | None = "02:00:00:00:00:01",
        migratable: tuple[str, str, str] | None = ("True", "", "")) -> dict[str, Any]:
    iface: dict[str, Any] = {"name": "lan", "binding": {"name": "macvtap"}}
    if mac:
        iface["macAddress"] = mac
    status: dict[str, Any] = {"phase": phase, "nodeName": node,
                              "interfaces": [{"name": "default", "mac": "0a:58:00:00:00:01"},
                                             {"name": "lan", "mac": mac or "02:aa:bb:cc:dd:ee"}]}
    if migratable:
        status["conditions"] = [{"type": "LiveMigratable", "status": migratable[0], "reason": migratable[1],
                                 "message": migratable[2]}]
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}}, iface]}}},
            "status": status}


def node(name: str, lan: int, *, ready: bool = True) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"allocatable": {f"{PREFIX}/lan": str(lan)},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(name: str, node_name: str, units: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": node_name, "containers": [
        {"name": "compute", "resources": {"limits": {f"{PREFIX}/lan": str(units)}}}]}, "status": {"phase": "Running"}}


def checks(v: dict[str, Any] | None, nodes: list[dict[str, Any]], live: list[dict[str, Any]] | None = None,
           agents: set[str] | None = None, to: str | None = None) -> dict[str, migration.Check]:
    launcher = pod("virt-launcher-web-x", "a")
    found = migration.preflight(v, "web", bindings=BINDINGS, launcher=launcher, node_objs=nodes,
                                live_pods=[launcher, *(live or [])], agent_nodes=agents, to=to)
    return {c.id: c for c in found}


def test_a_vm_that_can_move() -> None:
    got = checks(vmi(), [node("a", 2), node("b", 2)], agents={"a", "b"})
    assert all(c.ok for c in got.values()), got
    assert got[migration.TARGET].detail == "b can take it (1 lan)"


def test_a_vm_that_does_not_run_stops_at_the_first_check() -> None:
    got = checks(vmi(phase="Scheduling"), [node("a", 2), node("b", 2)])
    assert list(got) == [migration.RUNNING] and not got[migration.RUNNING].ok
    assert "not running (Scheduling)" in got[migration.RUNNING].detail
    assert "no VMI" in checks(None, [])[migration.RUNNING].detail


def test_kubevirts_reason_is_quoted() -> None:
    got = checks(vmi(migratable=("False", "DisksNotLiveMigratable", "cannot migrate a hostDisk")),
                 [node("a", 2), node("b", 2)])
    c = got[migration.MIGRATABLE]
    assert not c.ok and c.detail == "KubeVirt: not live-migratable: DisksNotLiveMigratable: cannot migrate a hostDisk"


def test_no_mac_is_refused_and_says_why() -> None:
    c = checks(vmi(mac=None), [node("a", 2), node("b", 2)])[migration.MAC]
    assert not c.ok and c.blocking and c.detail.startswith("interface(s) lan have no macAddress")


def test_no_other_node_with_a_free_device() -> None:
    full = checks(vmi(), [node("a", 2), node("b", 1)], live=[pod("other", "b")])[migration.TARGET]
    assert not full.ok and "b: lan (0 free of 1)" in full.detail, full
    none = checks(vmi(), [node("a", 2), node("b", 0)])[migration.TARGET]
    assert not none.ok and "b: lan (0 free of 0)" in none.detail
    cordoned = checks(vmi(), [node("a", 2), node("b", 4, ready=False)])[migration.TARGET]
    assert not cordoned.ok and "b: not schedulable" in cordoned.detail


def test_to_names_the_node() -> None:
    nodes = [node("a", 2), node("b", 2), node("c", 2)]
    assert checks(vmi(), nodes, to="c")[migration.TARGET].detail == "c can take it (1 lan)"
    assert checks(vmi(), nodes, to="a")[migration.TARGET].detail == "the VM already runs on node a"
    assert checks(vmi(), nodes, to="zz")[migration.TARGET].detail == "node zz does not exist"


def test_no_agent_where_it_would_go_is_a_warning() -> None:
    c = checks(vmi(), [node("a", 2), node("b", 2)], agents={"a"})[migration.AGENT]
    assert not c.ok and not c.blocking and "kubevirt#5912" in c.detail


def test_the_migration_object_and_the_outcome() -> None:
    obj = migration.migration_object(vmi(), "b")
    assert obj["metadata"] == {"generateName": "web-migrate-", "namespace": "default"}
    assert obj["spec"] == {"vmiName": "web", "addedNodeSelector": {"kubernetes.io/hostname": "b"}}
    assert "addedNodeSelector" not in migration.migration_object(vmi(), None)["spec"]
    after = vmi(node="b")
    after["status"]["migrationState"] = {"targetNode": "b", "startTimestamp": "t0", "endTimestamp": "t2",
                                         "targetNodeDomainReadyTimestamp": "t1"}
    vmim = {"metadata": {"name": "web-migrate-x"}, "status": {"phase": "Succeeded"}}
    out = migration.outcome(vmim, vmi(), after, BINDINGS)
    assert (out["source"], out["node"], out["phase"]) == ("a", "b", "Succeeded")
    assert out["macs"] == {"lan": {"before": "02:00:00:00:00:01", "after": "02:00:00:00:00:01"}}


def test_handoff_events_are_the_vms_since_the_migration_started() -> None:
    report = {"handoffs": [
        {"event": "handoff", "mac": "02:00:00:00:00:AA", "time": "2026-12-07T09:59:59.900Z"},  # an earlier move
        {"event": "handoff", "mac": "02:00:00:00:00:aa", "time": "2026-12-07T10:00:04.250Z"},
        {"event": "handoff", "mac": "02:00:00:00:00:bb", "time": "2026-12-07T10:00:04.300Z"},  # another VM
        {"event": "reverted", "mac": "02:00:00:00:00:aa", "time": "2026-12-07T10:00:05.000Z"}]}
    got = migration.handoff_events(report, {"02:00:00:00:00:aa"}, "2026-12-07T10:00:00Z")
    assert [(e["event"], e["time"]) for e in got] == [("handoff", "2026-12-07T10:00:04.250Z"),
                                                      ("reverted", "2026-12-07T10:00:05.000Z")]
    assert migration.handoff_events({}, {"02:00:00:00:00:aa"}, None) == []  # an agent of before the report had them
