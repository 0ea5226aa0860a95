"""`vm migrate` against the real API server with the pinned KubeVirt's CRDs and admission: what it refuses (one line,
exit 3, nothing written), what --check says, the object it writes (and a server dry run persists nothing), and
--wait following the migration to its end (no virt-controller runs here: the test plays its part on the object's
status)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from macvtapctl.errors import ExitCode
from macvtapctl.kube.resources import NODE, POD, VIRTUAL_MACHINE_INSTANCE
from macvtapctl.ops.migrate import VIRTUAL_MACHINE_INSTANCE_MIGRATION as VMIM
from tests.conftest import vm_manifest, vmi_of
from tests.integration.test_doctor import node, reset, wipe

RES = "macvtap.network.kubevirt.io/dataplane"


@pytest.fixture(autouse=True)
def clean(control_plane):
    reset(control_plane)  # test_doctor's: KubeVirt with the binding, no VM, node or ConfigMap
    yield
    with control_plane.kube() as k:
        for m in k.list(VMIM, "default"):
            k.delete(VMIM, m["metadata"]["name"], "default")
        for p in k.list(POD, "default", label_selector="kubevirt.io=virt-launcher"):
            k.delete(POD, p["metadata"]["name"], "default", grace_period=0)
    wipe(control_plane)


def vmi_status_subresource(cp) -> str | None:
    """Where virt-handler writes a VMI's status: the status subresource where the pinned CRD has one."""
    return "status" if cp.has_status_subresource("virtualmachineinstances.kubevirt.io") else None


def running_vm(cp, *, mac: bool = True, migratable: str = "True") -> None:
    """A VMI as virt-handler reports a running one on node a, and its launcher pod holding one device."""
    flags = ["--network", "dataplane"] + (["--mac", "dataplane=02:00:00:00:00:aa"] if mac else [])
    vmi = vmi_of(vm_manifest("web", *flags))
    sub = vmi_status_subresource(cp)
    with cp.kube() as k:
        created = k.create(VIRTUAL_MACHINE_INSTANCE, vmi, "default")
        k.merge_patch(VIRTUAL_MACHINE_INSTANCE, "web", {"status": {
            "phase": "Running", "nodeName": "a",
            "conditions": [{"type": "LiveMigratable", "status": migratable,
                            **({} if migratable == "True" else {"reason": "DisksNotLiveMigratable",
                                                                 "message": "cannot migrate a hostDisk"})}],
            "interfaces": [{"name": "dataplane", "mac": "02:00:00:00:00:aa"}]}}, "default", subresource=sub)
        k.create(POD, {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "virt-launcher-web-x", "namespace": "default",
            "labels": {"kubevirt.io": "virt-launcher", "kubevirt.io/created-by": created["metadata"]["uid"]}},
            "spec": {"nodeName": "a", "containers": [{"name": "compute", "image": "x", "resources": {
                "limits": {RES: "1"}}}]}}, "default")
        k.merge_patch(POD, "virt-launcher-web-x", {"status": {"phase": "Running"}}, "default", subresource="status")
    for name in ("a", "b"):
        node(cp, name, {RES: "2"})


def migrations(cp) -> list[dict[str, Any]]:
    with cp.kube() as k:
        return list(k.list(VMIM, "default"))


def test_a_vm_that_does_not_run_is_refused_and_nothing_is_written(cli, admin, control_plane) -> None:
    r = cli("--kubeconfig", admin, "vm", "migrate", "web")
    assert r.exit_code == ExitCode.PRECONDITION, r.stderr
    assert r.stderr.strip() == ("error: VM default/web cannot migrate: VM web is not running (no VMI): only a "
                                "running VM migrates; nothing was written")
    assert migrations(control_plane) == []


def test_check_names_what_keeps_it_from_moving(cli, admin, control_plane) -> None:
    running_vm(control_plane, mac=False, migratable="False")
    r = cli("--kubeconfig", admin, "vm", "migrate", "web", "--check", "-o", "json")
    assert r.exit_code == ExitCode.FINDINGS, r.stderr
    doc = json.loads(r.stdout)
    failed = {c["check"]: c["detail"] for c in doc["checks"] if not c["ok"]}
    assert not doc["migratable"] and set(failed) == {"live-migratable", "mac", "agent"}, doc
    assert failed["live-migratable"] == ("KubeVirt: not live-migratable: DisksNotLiveMigratable: cannot migrate a "
                                         "hostDisk")
    refused = cli("--kubeconfig", admin, "vm", "migrate", "web")
    assert refused.exit_code == ExitCode.PRECONDITION and "not live-migratable" in refused.stderr
    assert migrations(control_plane) == []


def test_the_migration_is_written_as_virtctl_writes_it_and_followed_to_its_end(cli, admin, control_plane) -> None:
    running_vm(control_plane)
    check = cli("--kubeconfig", admin, "vm", "migrate", "web", "--check", "-o", "json")
    assert check.exit_code == 0, check.stdout + check.stderr
    dry = cli("--kubeconfig", admin, "vm", "migrate", "web", "--to", "b", "--dry-run=server", "-o", "json")
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["spec"] == {"vmiName": "web", "addedNodeSelector": {"kubernetes.io/hostname": "b"}}
    assert "(server dry run)" in dry.stderr and migrations(control_plane) == []
    nowhere = cli("--kubeconfig", admin, "vm", "migrate", "web", "--to", "a")
    assert nowhere.exit_code == ExitCode.PRECONDITION and "already runs on node a" in nowhere.stderr

    def play_kubevirt() -> None:
        """virt-controller's part: the migration goes through its phases; the VMI ends up on node b."""
        deadline = time.monotonic() + 20
        while not migrations(control_plane) and time.monotonic() < deadline:
            time.sleep(0.05)
        name = migrations(control_plane)[0]["metadata"]["name"]
        with control_plane.kube() as k:
            for phase in ("Scheduling", "TargetReady", "Running"):
                k.merge_patch(VMIM, name, {"status": {"phase": phase}}, "default", subresource="status")
                time.sleep(0.2)
            k.merge_patch(VIRTUAL_MACHINE_INSTANCE, "web", {"status": {"nodeName": "b", "migrationState": {
                "targetNode": "b", "startTimestamp": "2026-12-07T10:00:00Z", "endTimestamp": "2026-12-07T10:00:05Z",
                "targetNodeDomainReadyTimestamp": "2026-12-07T10:00:04Z", "completed": True}}}, "default",
                subresource=vmi_status_subresource(control_plane))
            k.merge_patch(VMIM, name, {"status": {"phase": "Succeeded"}}, "default", subresource="status")

    player = threading.Thread(target=play_kubevirt)
    player.start()
    r = cli("--kubeconfig", admin, "vm", "migrate", "web", "--to", "b", "--wait", "--timeout", "30s", "-o", "json")
    player.join()
    assert r.exit_code == 0, r.stderr
    [m] = migrations(control_plane)
    assert m["metadata"]["name"].startswith("web-migrate-") and m["spec"]["addedNodeSelector"] == {
        "kubernetes.io/hostname": "b"}
    report = json.loads(r.stdout)
    assert (report["phase"], report["source"], report["node"]) == ("Succeeded", "a", "b"), report
    assert report["macs"] == {"dataplane": {"before": "02:00:00:00:00:aa", "after": "02:00:00:00:00:aa"}}
    # No agent answers here (its pods are objects only): the source's hand-off is reported unknown, not failed.
    assert report["handoff"]["node"] == "a" and report["handoff"].get("error"), report["handoff"]
    said = [line for line in r.stderr.splitlines() if line.startswith("migration: ")]
    assert said[0] == "migration: Pending" and said[-1] == "migration: Succeeded", r.stderr


def test_wait_times_out_with_exit_6(cli, admin, control_plane) -> None:
    running_vm(control_plane)
    r = cli("--kubeconfig", admin, "vm", "migrate", "web", "--wait", "--timeout", "2s")
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    assert "timed out after 2s waiting for migration web-migrate-" in r.stderr
    with control_plane.kube() as k:
        assert k.list(NODE)  # the nodes the check read are still there: nothing else was changed
