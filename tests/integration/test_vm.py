"""`vm create --apply`, `vm check`, `vm convert` against the real API server, KubeVirt's CRDs and admission
(what KubeVirt itself judges, version by version, is in test_kubevirt_admission.py)."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from macvtapctl.errors import ExitCode
from macvtapctl.kube.resources import CONFIGMAP, NAD, NAMESPACE, VIRTUAL_MACHINE, Resource
from tests.conftest import resource_versions, run_cli

VAP = Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", "ValidatingAdmissionPolicy",
               namespaced=False)
VAPB = Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
                "ValidatingAdmissionPolicyBinding", namespaced=False)


@pytest.fixture(autouse=True)
def cluster(control_plane, admin, cli):
    """KubeVirt v1.5 with the binding, eth0 exposed as 'dataplane', NAD default/dataplane; no VMs."""
    control_plane.reset_kubevirt("v1.5.0")
    with control_plane.kube() as k:
        for cm in k.list(CONFIGMAP, field_selector="metadata.name=macvtap-deviceplugin-config"):
            k.delete(CONFIGMAP, cm["metadata"]["name"], cm["metadata"]["namespace"])
        for n in k.list(NAD):
            k.delete(NAD, n["metadata"]["name"], n["metadata"]["namespace"])
    r = cli("--kubeconfig", admin, "setup", "eth0", "--name", "dataplane")
    assert r.exit_code == 0, r.stderr
    yield
    with control_plane.kube() as k:
        for vm in k.list(VIRTUAL_MACHINE):
            k.delete(VIRTUAL_MACHINE, vm["metadata"]["name"], vm["metadata"]["namespace"])


def vms(control_plane, ns: str = "default") -> dict[str, dict]:
    with control_plane.kube() as k:
        return {v["metadata"]["name"]: v for v in k.list(VIRTUAL_MACHINE, ns)}


def test_apply_then_unchanged(cli, admin, control_plane) -> None:
    args = ("--kubeconfig", admin, "vm", "create", "web", "--network", "dataplane", "--mac", "auto", "--apply")
    r = cli(*args)
    assert r.exit_code == 0, r.stderr
    assert r.stderr == "virtualmachine.kubevirt.io/web created\n"
    assert r.stdout == ""
    vm = vms(control_plane)["web"]
    assert {m["manager"] for m in vm["metadata"]["managedFields"]} == {"macvtapctl"}
    r = cli(*args)
    assert r.stderr == "virtualmachine.kubevirt.io/web unchanged\n"
    assert vms(control_plane)["web"]["metadata"]["resourceVersion"] == vm["metadata"]["resourceVersion"]
    r = cli(*args[:-1], "--memory", "2Gi", "--apply", "-o", "json")
    assert r.stderr == "virtualmachine.kubevirt.io/web configured\n"
    assert json.loads(r.stdout)["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "2Gi"


def test_a_server_dry_run_of_a_changed_vm_says_configured(cli, admin, control_plane) -> None:
    """Issue 13.11: a server dry run never bumps resourceVersion, so comparing those said "unchanged"."""
    base = ("--kubeconfig", admin, "vm", "create", "web", "--network", "dataplane", "--mac", "auto")
    assert cli(*base, "--apply").exit_code == 0
    before = vms(control_plane)["web"]["metadata"]["resourceVersion"]
    r = cli(*base, "--memory", "3Gi", "--dry-run=server")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == "virtualmachine.kubevirt.io/web configured (server dry run)\n"
    assert cli(*base, "--dry-run=server").stderr == "virtualmachine.kubevirt.io/web unchanged (server dry run)\n"
    assert vms(control_plane)["web"]["metadata"]["resourceVersion"] == before


def test_fields_another_manager_owns_are_a_conflict_unless_forced(cli, admin, control_plane) -> None:
    """Issue 13.11: `vm create --apply` used to force-apply over fields someone else set (kubectl's rule: a
    conflict, exit 5, naming the manager; --force-conflicts takes them over)."""
    base = ("--kubeconfig", admin, "vm", "create", "web", "--network", "dataplane", "--mac", "auto")
    assert cli(*base, "--apply").exit_code == 0
    with control_plane.kube() as k:
        k.field_manager = "gitops-controller"
        vm = json.loads(cli(*base, "--run-strategy", "Halted", "-o", "json", "--offline").stdout)
        k.apply(VIRTUAL_MACHINE, vm, "default", force=True, strict=False)  # it now owns spec.runStrategy
    r = cli(*base, "--apply")
    assert r.exit_code == ExitCode.CONFLICT, r.stderr
    assert "gitops-controller" in r.stderr and "--force-conflicts" in r.stderr
    assert vms(control_plane)["web"]["spec"]["runStrategy"] == "Halted"
    r = cli(*base, "--apply", "--force-conflicts")
    assert r.exit_code == 0, r.stderr
    assert vms(control_plane)["web"]["spec"]["runStrategy"] == "Always"


def test_server_dry_run_and_client_dry_run_write_nothing(cli, admin, control_plane) -> None:
    r = cli("--kubeconfig", admin, "vm", "create", "web", "--network", "dataplane", "--dry-run=server")
    assert r.exit_code == 0, r.stderr
    assert "(server dry run)" in r.stderr
    r = cli("--kubeconfig", admin, "vm", "create", "web", "--network", "nope", "--dry-run=client")
    assert r.exit_code == ExitCode.PRECONDITION  # client dry run still checks the cluster
    assert "default/nope does not exist" in r.stderr
    r = cli("--kubeconfig", admin, "vm", "create", "web", "--network", "nope", "--dry-run=client", "--offline")
    assert r.exit_code == 0
    assert yaml.safe_load(r.stdout)["metadata"]["name"] == "web"
    assert vms(control_plane) == {}


def test_cluster_checks_stop_before_any_write(cli, admin, control_plane) -> None:
    with control_plane.kube() as k:
        k.create(NAD, {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                       "metadata": {"name": "unexposed", "annotations": {
                           "k8s.v1.cni.cncf.io/resourceName": "macvtap.network.kubevirt.io/eth9"}},
                       "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": "unexposed", "type": "macvtap"})}},
                 "default")
        if k.get_or_none(NAMESPACE, "team") is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    cases = [
        (["--network", "unexposed"], "resource 'eth9' of NAD default/unexposed is not exposed"),
        (["--network", "dataplane", "--binding-name", "mvtap"], "network binding 'mvtap' is not registered"),
        (["--network", "dataplane", "-n", "team"], "it exists in 'default': use networkName default/dataplane"),
    ]
    for args, needle in cases:
        r = cli("--kubeconfig", admin, "vm", "create", "web", *args, "--apply")
        assert r.exit_code == ExitCode.PRECONDITION, r.stderr
        assert needle in r.stderr
        assert "nothing was written" in r.stderr
    assert vms(control_plane) == {} and vms(control_plane, "team") == {}
    r = cli("--kubeconfig", admin, "vm", "create", "web", "--network", "default/dataplane", "-n", "team", "--apply")
    assert r.exit_code == 0, r.stderr


def test_duplicate_mac_across_vms_and_within_a_batch(cli, admin, control_plane) -> None:
    mac = "02:aa:bb:cc:dd:01"
    assert cli("--kubeconfig", admin, "vm", "create", "a", "--network", "dataplane", "--mac",
               f"dataplane={mac}", "--apply").exit_code == 0
    r = cli("--kubeconfig", admin, "vm", "create", "b", "--network", "dataplane", "--mac", f"dataplane={mac}",
            "--apply")
    assert r.exit_code == ExitCode.PRECONDITION
    assert f"MAC {mac} is already used by default/a" in r.stderr
    # A batch's MACs count up from the one given: c-1 gets ...:00, c-2 would get a's ...:01.
    r = cli("--kubeconfig", admin, "vm", "create", "c", "--count", "2", "--network", "dataplane", "--mac",
            "dataplane=02:aa:bb:cc:dd:00", "--apply")
    assert r.exit_code == ExitCode.PRECONDITION
    assert f"MAC {mac} is already used by default/a" in r.stderr
    assert set(vms(control_plane)) == {"a"}


@pytest.fixture
def deny_batch_3(control_plane):
    """A real admission failure for exactly one VM of a batch: a ValidatingAdmissionPolicy."""
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": "deny-batch-3"},
              "spec": {"failurePolicy": "Fail",
                       "matchConstraints": {"resourceRules": [{
                           "apiGroups": ["kubevirt.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                           "resources": ["virtualmachines"]}]},
                       "validations": [{"expression": "object.metadata.name != 'batch-3'",
                                        "message": "batch-3 is not allowed"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": "deny-batch-3"},
               "spec": {"policyName": "deny-batch-3", "validationActions": ["Deny"]}}
    from macvtapctl.errors import InvalidObjectError, MacvtapctlError
    from macvtapctl.kube.options import DryRun

    with control_plane.kube() as k:
        k.create(VAP, policy)
        k.create(VAPB, binding)
        # A VM KubeVirt's own admission accepts, so that only the policy can refuse it.
        probe = yaml.safe_load(run_cli("vm", "create", "batch-3", "--offline").stdout)
        for _ in range(100):  # the policy takes effect once the apiserver has compiled it
            try:
                k.create(VIRTUAL_MACHINE, probe, "default", dry_run=DryRun.SERVER)
            except (InvalidObjectError, MacvtapctlError) as exc:
                assert "batch-3 is not allowed" in str(exc)
                break
            time.sleep(0.1)
    yield
    with control_plane.kube() as k:
        k.delete(VAPB, "deny-batch-3")
        k.delete(VAP, "deny-batch-3")


def test_batch_with_one_failing_vm(cli, admin, control_plane, deny_batch_3) -> None:
    r = cli("--kubeconfig", admin, "vm", "create", "batch", "--count", "5", "--network", "dataplane",
            "--mac", "auto", "--apply", "--concurrency", "3")
    assert r.exit_code == ExitCode.USAGE, r.stderr  # the one failure's code: the policy's 422 Invalid
    assert "error: VM batch-3:" in r.stderr and "batch-3 is not allowed" in r.stderr
    assert r.stderr.rstrip().splitlines()[-1] == "error: 1 of 5 VMs failed: batch-3"
    assert set(vms(control_plane)) == {"batch-1", "batch-2", "batch-4", "batch-5"}


def test_vm_check(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "vm", "create", "good", "--network", "dataplane", "--mac", "auto",
               "--apply").exit_code == 0
    r = cli("--kubeconfig", admin, "vm", "check", "--all")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "1 VM(s) using macvtap checked: 0 error(s), 0 warning(s)" in r.stderr
    legacy = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "legacy"},
              "spec": {"runStrategy": "Halted", "template": {"spec": {
                  "domain": {"devices": {"interfaces": [{"name": "net1", "macvtap": {}}]}},
                  "networks": [{"name": "net1", "multus": {"networkName": "gone"}}]}}}}
    nomac = yaml.safe_load(cli("vm", "create", "nomac", "--network", "dataplane").stdout)
    # The legacy VM predates the cluster's upgrade: KubeVirt's admission refuses `macvtap: {}` on create today.
    with control_plane.without_admission("virt-api-validator"), control_plane.kube() as k:
        k.create(VIRTUAL_MACHINE, legacy, "default")
    with control_plane.kube() as k:
        k.create(VIRTUAL_MACHINE, nomac, "default")
    r = cli("--kubeconfig", admin, "vm", "check", "--all")
    assert r.exit_code == ExitCode.FINDINGS
    rows = [line.split()[:4] for line in r.stdout.splitlines()[1:]]
    assert ["default", "legacy", "error", "core-macvtap"] in rows
    assert ["default", "legacy", "error", "nad-missing"] in rows
    assert ["default", "nomac", "warning", "no-mac"] in rows
    doc = json.loads(cli("--kubeconfig", admin, "vm", "check", "-A", "-o", "json").stdout)
    assert doc["checked"] == 3 and doc["errors"] == 2 and doc["warnings"] == 2  # legacy has no MAC either
    assert cli("--kubeconfig", admin, "vm", "check", "nomac").exit_code == 0
    assert cli("--kubeconfig", admin, "vm", "check", "nomac", "--strict").exit_code == ExitCode.FINDINGS
    assert cli("--kubeconfig", admin, "vm", "check").exit_code == ExitCode.USAGE


def test_vm_convert_registers_binding_and_is_idempotent(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.4.0")  # no binding registered yet
    legacy = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "legacy"},
              "spec": {"runStrategy": "Halted", "template": {"spec": {
                  "domain": {"devices": {"interfaces": [{"name": "default", "masquerade": {}},
                                                        {"name": "net1", "macvtap": {}}]}},
                  "networks": [{"name": "default", "pod": {}},
                               {"name": "net1", "multus": {"networkName": "dataplane"}}]}}}}
    with control_plane.without_admission("virt-api-validator"), control_plane.kube() as k:
        k.create(VIRTUAL_MACHINE, legacy, "default")  # from before the upgrade, as above
    before = resource_versions(control_plane, [(VIRTUAL_MACHINE, "legacy", "default")])
    r = cli("--kubeconfig", admin, "vm", "convert", "legacy", "--dry-run=client", "-o", "yaml")
    assert r.exit_code == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][1] == {
        "name": "net1", "binding": {"name": "macvtap"}}
    assert resource_versions(control_plane, [(VIRTUAL_MACHINE, "legacy", "default")]) == before
    r = cli("--kubeconfig", admin, "vm", "convert", "--all")
    assert r.exit_code == 0, r.stderr
    assert "kubevirt.kubevirt.io/kubevirt configured" in r.stderr  # binding (and the v1.4 gate) registered
    assert "virtualmachine.kubevirt.io/legacy converted" in r.stderr
    got = vms(control_plane)["legacy"]["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    assert got == [{"name": "default", "masquerade": {}}, {"name": "net1", "binding": {"name": "macvtap"}}]
    r = cli("--kubeconfig", admin, "vm", "convert", "--all")
    assert "virtualmachine.kubevirt.io/legacy unchanged" in r.stderr
    assert cli("--kubeconfig", admin, "vm", "check", "legacy").exit_code == 0


def _counting(monkeypatch) -> list[tuple[str, str]]:
    """(method, path) of every request the client sends."""
    from macvtapctl.kube.client import Kube

    sent: list[tuple[str, str]] = []
    real = Kube._send

    def send(self, method, path, *args, **kw):
        sent.append((method, path))
        return real(self, method, path, *args, **kw)

    monkeypatch.setattr(Kube, "_send", send)
    return sent


def test_a_batch_sends_one_write_per_vm_and_lists_each_kind_once(cli, admin, control_plane, monkeypatch) -> None:
    sent = _counting(monkeypatch)
    r = cli("--kubeconfig", admin, "vm", "create", "many", "--count", "12", "--network", "dataplane", "--apply",
            "--concurrency", "4")
    assert r.exit_code == 0, r.stderr
    vm_path = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/"
    per_vm = [(m, p) for m, p in sent if p.startswith(vm_path)]
    assert sorted(per_vm) == sorted(("PATCH", f"{vm_path}many-{i}") for i in range(1, 13))  # no GET per VM
    assert sent.count(("GET", "/apis/kubevirt.io/v1/virtualmachines")) == 1
    assert r.stderr.count(" created") == 12
    sent.clear()
    r = cli("--kubeconfig", admin, "vm", "check", "-A")
    assert r.exit_code == 0, r.stderr
    assert "12 VM(s) using macvtap checked" in r.stderr
    lists = [p for m, p in sent if m == "GET"]
    assert lists.count("/apis/kubevirt.io/v1/virtualmachines") == 1
    assert lists.count("/apis/kubevirt.io/v1/virtualmachineinstances") == 1
    assert not [p for p in lists if p.startswith(vm_path)], "a request per VM"


def test_an_interrupted_batch_is_completed_by_rerunning_it(admin, control_plane, tmp_path) -> None:
    """Ctrl-C in the middle of `vm create --count --apply`: it stops (exit 130) without applying what was queued;
    the same command again creates the rest, leaves the applied ones unchanged and duplicates nothing."""
    import os
    import signal
    import subprocess
    import sys

    count = 150
    argv = [sys.executable, "-m", "macvtapctl", "--kubeconfig", admin, "vm", "create", "intr", "--count", str(count),
            "--network", "dataplane", "--apply", "--concurrency", "1"]
    # SIGINT as a terminal's Ctrl-C finds it: a runner started as a background job (`cmd &` in a script) ignores
    # SIGINT, the child would inherit that, and Python would then install no KeyboardInterrupt handler at all.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    deadline = time.monotonic() + 60
    while len(vms(control_plane)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    first = set(vms(control_plane))
    assert 5 <= len(first) < count, len(first)  # stopped early: the queued VMs were not applied
    rerun = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"}, timeout=300,
                           check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert set(vms(control_plane)) == {f"intr-{i}" for i in range(1, count + 1)}
    assert rerun.stderr.count(" unchanged") == len(first) and rerun.stderr.count(" created") == count - len(first)


def test_vm_convert_against_a_concurrent_edit_loses_nothing(control_plane) -> None:
    """`vm convert` read the VM; before its guarded patch lands, another writer labels it and adds a second core
    `macvtap: {}` interface. The patch's resourceVersion test fails, the VM is read again and re-planned: the
    other writer's label stays and both interfaces are converted, none twice."""
    from macvtapctl.kube.options import DryRun
    from macvtapctl.ops.vm import convert_one

    class Quiet:
        def status(self, *a: object) -> None: ...
        def info(self, m: str) -> None: ...
        def warn(self, m: str) -> None: ...
        def error(self, m: str) -> None: ...

    iface = {"name": "net1", "macvtap": {}}
    legacy = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "racy"},
              "spec": {"runStrategy": "Halted", "template": {"spec": {
                  "domain": {"devices": {"interfaces": [iface]}},
                  "networks": [{"name": "net1", "multus": {"networkName": "dataplane"}}]}}}}
    with control_plane.without_admission("virt-api-validator"), control_plane.kube() as k:
        k.create(VIRTUAL_MACHINE, legacy, "default")
        stale = k.get(VIRTUAL_MACHINE, "racy", "default")  # what convert read
        k.json_patch(VIRTUAL_MACHINE, "racy", [  # the other writer, in between
            {"op": "add", "path": "/metadata/labels", "value": {"team": "blue"}},
            {"op": "add", "path": "/spec/template/spec/domain/devices/interfaces/-",
             "value": {"name": "net2", "macvtap": {}}},
            {"op": "add", "path": "/spec/template/spec/networks/-",
             "value": {"name": "net2", "multus": {"networkName": "dataplane"}}}], "default")
        convert_one(k, Quiet(), DryRun.NONE, stale, "macvtap")
        after = k.get(VIRTUAL_MACHINE, "racy", "default")
    assert after["metadata"]["labels"] == {"team": "blue"}
    assert after["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"] == [
        {"name": "net1", "binding": {"name": "macvtap"}}, {"name": "net2", "binding": {"name": "macvtap"}}]
