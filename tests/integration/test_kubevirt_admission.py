"""KubeVirt judges what macvtapctl writes: for each pinned KubeVirt release (tests/kubevirt, built from
kubevirt.io/kubevirt), a control plane serving that release's CRDs and validating admission (virt-api's VM and
VMI admitters, virt-operator's KubeVirt CR admitters), its KubeVirt CR reporting that version, and
virt-controller's start-time binding check. KUBEVIRT_VERSION narrows the run to the pin it selects."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from macvtapctl.errors import ExitCode, MacvtapctlError
from macvtapctl.kube.resources import KUBEVIRT, VIRTUAL_MACHINE, Resource
from macvtapctl.manifests.vm import RUN_STRATEGIES
from tests.conftest import run_cli
from tests.harness.controlplane import ControlPlane, kubevirt_pins, select_kubevirt

CLUSTER_INSTANCETYPE = Resource("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterinstancetypes",
                                "VirtualMachineClusterInstancetype", namespaced=False)
CLUSTER_PREFERENCE = Resource("instancetype.kubevirt.io", "v1beta1", "virtualmachineclusterpreferences",
                              "VirtualMachineClusterPreference", namespaced=False)
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVtdW1lc3NhZ2V0ZXN0a2V5Zm9ydGVzdHM user@host"


def _pins() -> list[str]:
    wanted = os.environ.get("KUBEVIRT_VERSION")
    return [select_kubevirt(wanted)[0]] if wanted else kubevirt_pins()


@pytest.fixture(scope="module", params=_pins())
def kv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane running one pinned KubeVirt, the binding registered, eth0 exposed as 'dataplane' with its
    NAD, an instance type 'small' and a preference 'linux'."""
    pin = request.param
    cp = ControlPlane(tmp_path_factory.mktemp(f"kubevirt-{pin}"), kubevirt_version=pin, kubevirt_pin=pin)
    try:
        cp.start()
    except Exception as exc:  # a fixture that cannot build or start fails the run; it never skips
        cp.stop()
        pytest.fail(f"KubeVirt {pin} control plane did not start: {exc}", pytrace=False)
    admin = str(cp.admin_kubeconfig)
    r = run_cli("--kubeconfig", admin, "setup", "eth0", "--name", "dataplane")
    assert r.exit_code == 0, r.stderr
    with cp.kube() as k:
        k.create(CLUSTER_INSTANCETYPE, {
            "apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineClusterInstancetype",
            "metadata": {"name": "small"}, "spec": {"cpu": {"guest": 1}, "memory": {"guest": "1Gi"}}})
        k.create(CLUSTER_PREFERENCE, {
            "apiVersion": "instancetype.kubevirt.io/v1beta1", "kind": "VirtualMachineClusterPreference",
            "metadata": {"name": "linux"}, "spec": {"devices": {"preferredDiskBus": "virtio"}}})
    yield cp
    cp.stop()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# Every flag of `vm create`, alone or in the combinations users write; each is applied, then dry-run on the server.
COMBINATIONS: dict[str, list[str]] = {
    "defaults": [],
    "mac-auto": ["--mac", "auto"],
    "static-ip-batch": ["--count", "3", "--ip", "dataplane=192.0.2.5/24,192.0.2.1"],
    "explicit-mac-batch": ["--count", "2", "--mac", "dataplane=02:00:00:00:01:fe"],
    "no-pod-network": ["--no-pod-network", "--mac", "auto", "--cpu", "2", "--memory", "2Gi"],
    "no-network-data": ["--no-network-data", "--label", "app=web", "--label", "example.com/tier=front"],
    "two-networks": ["--network", "second=default/dataplane", "--mac", "dataplane=02:00:00:00:00:10"],
    "user-ssh-password": ["--user", "fedora", "--ssh-key", SSH_KEY, "--password-file", "@password"],
    "name-template": ["--count", "2", "--name-template", "web-{i}-a"],
    "instancetype-preference": ["--instancetype", "small", "--preference", "linux"],
    "instancetype-kinds": ["--instancetype", "virtualmachineclusterinstancetype/small",
                           "--preference", "virtualmachineclusterpreference/linux"],
    "volumes": ["--volume-containerdisk", "src:quay.io/containerdisks/fedora:41,bootorder:1",
                "--volume-pvc", "src:data-disk,bootorder:2"],
    "image-and-pvc": ["--image", "quay.io/containerdisks/fedora:41", "--volume-pvc", "src:data,name:data"],
    "datasource": ["--volume-datasource", "src:os-images/fedora,size:10Gi"],
    "cloud-init-base64": ["--cloud-init-user-data", b64("#cloud-config\nuser: fedora\n"),
                          "--cloud-init-network-data", b64("version: 2\nethernets: {}\n")],
    "cloud-init-none": ["--cloud-init", "none", "--no-network-data"],
    "grace-and-credentials": ["--termination-grace-period", "0", "--user", "fedora",
                              "--access-cred", "src:my-keys", "--access-cred", "type:password,src:my-password"],
    "credentials-nocloud": ["--access-cred", "type:ssh,src:my-keys,method:nocloud", "--ga-manage-ssh"],
    **{f"run-strategy-{s}": ["--run-strategy", s] for s in RUN_STRATEGIES},
}


@pytest.mark.parametrize("combo", list(COMBINATIONS))
def test_every_vm_create_combination_is_admitted(kv: ControlPlane, cli: Any, combo: str, tmp_path: Path) -> None:
    admin = str(kv.admin_kubeconfig)
    password = tmp_path / "password"
    password.write_text("s3cret!\n")
    flags = [str(password) if f == "@password" else f for f in COMBINATIONS[combo]]
    name = f"c-{combo}".lower()[:40].rstrip("-")
    base = ["--kubeconfig", admin, "vm", "create", name, "--network", "dataplane", *flags]
    r = cli(*base, "--dry-run=server")
    assert r.exit_code == 0, r.stderr  # KubeVirt's VM admitter ran on each, nothing stored
    r = cli(*base, "--apply", "-o", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    applied = doc["items"] if doc.get("kind") == "List" else [doc]
    with kv.kube() as k:
        for vm in applied:
            stored = k.get(VIRTUAL_MACHINE, vm["metadata"]["name"], "default")
            assert kv.binding_check(stored) == ""  # virt-controller would start it
            k.delete(VIRTUAL_MACHINE, vm["metadata"]["name"], "default")


def test_admission_is_live_and_refuses_in_kubevirts_words(kv: ControlPlane, cli: Any) -> None:
    """A control for the test above: the webhook answers, and refuses what KubeVirt refuses."""
    vm = yaml.safe_load(cli("vm", "create", "bad", "--network", "dataplane", "--offline").stdout)
    vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][1]["masquerade"] = {}
    with kv.kube() as k, pytest.raises(MacvtapctlError) as err:
        k.create(VIRTUAL_MACHINE, vm, "default")
    assert "admission webhook" in str(err.value) and "cannot have both binding plugin and interface binding" \
        in str(err.value)


def test_batches_get_consecutive_addresses(kv: ControlPlane, cli: Any) -> None:
    admin = str(kv.admin_kubeconfig)
    r = cli("--kubeconfig", admin, "vm", "create", "s", "--count", "3", "--network", "dataplane", "--ip",
            "dataplane=192.0.2.5/24", "--mac", "dataplane=02:00:00:00:02:00", "--apply")
    assert r.exit_code == 0, r.stderr
    with kv.kube() as k:
        got = {}
        for i in (1, 2, 3):
            vm = k.get(VIRTUAL_MACHINE, f"s-{i}", "default")
            spec = vm["spec"]["template"]["spec"]
            data = yaml.safe_load(spec["volumes"][1]["cloudInitNoCloud"]["networkData"])
            got[i] = (data["ethernets"]["dataplane"]["addresses"], spec["domain"]["devices"]["interfaces"][1]
                      ["macAddress"])
            k.delete(VIRTUAL_MACHINE, f"s-{i}", "default")
    assert got == {1: (["192.0.2.5/24"], "02:00:00:00:02:00"), 2: (["192.0.2.6/24"], "02:00:00:00:02:01"),
                   3: (["192.0.2.7/24"], "02:00:00:00:02:02")}


def test_an_unregistered_binding_is_admitted_but_cannot_start_and_vm_check_says_why(kv: ControlPlane,
                                                                                     cli: Any) -> None:
    """Measured: KubeVirt's admission does not check that a binding is registered; virt-controller refuses to
    start the VM ("couldn't find configuration for network binding"). `vm create` refuses it up front, and
    `vm check` agrees with virt-controller, VM by VM."""
    admin = str(kv.admin_kubeconfig)
    r = cli("--kubeconfig", admin, "vm", "create", "ub", "--network", "dataplane", "--binding-name", "other",
            "--apply")
    assert r.exit_code == ExitCode.PRECONDITION
    assert "network binding 'other' is not registered" in r.stderr
    shapes = {
        "registered": cli("vm", "create", "registered", "--network", "dataplane", "--mac", "auto", "--offline"),
        "unregistered": cli("vm", "create", "unregistered", "--network", "dataplane", "--binding-name", "other",
                            "--mac", "auto", "--offline"),
        "mixed": cli("vm", "create", "mixed", "--network", "dataplane", "--network", "two=dataplane",
                     "--mac", "auto", "--offline"),
        "pod-only": cli("vm", "create", "pod-only", "--offline"),
    }
    vms = {name: yaml.safe_load(run.stdout) for name, run in shapes.items()}
    ifaces = vms["mixed"]["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    ifaces[2]["binding"]["name"] = "other"
    with kv.kube() as k:
        for vm in vms.values():
            k.create(VIRTUAL_MACHINE, vm, "default")  # admitted, whatever the binding
    try:
        with kv.kube() as k:
            stored = {n: k.get(VIRTUAL_MACHINE, n, "default") for n in vms}
        starts = {n: kv.binding_check(vm) for n, vm in stored.items()}
        # (each release in its own words: v1.5.1 says "bindining")
        assert starts["unregistered"] == starts["mixed"] != ""
        assert starts["mixed"].startswith("couldn't find configuration for network bindin")
        assert starts["mixed"].endswith(": other")
        assert starts["registered"] == starts["pod-only"] == ""
        for n in vms:
            doc = json.loads(cli("--kubeconfig", admin, "vm", "check", n, "-o", "json").stdout)
            said = [f["message"] for f in doc["findings"] if f["check"] == "binding-not-registered"]
            assert bool(said) == bool(starts[n]), (n, said, starts[n])
            assert all("couldn't find configuration for network binding" in m for m in said)
        # Registering the binding is what virt-controller needs, and then vm check is satisfied too.
        assert cli("--kubeconfig", admin, "enable", "--binding-name", "other").exit_code == 0
        with kv.kube() as k:
            assert kv.binding_check(k.get(VIRTUAL_MACHINE, "unregistered", "default")) == ""
        doc = json.loads(cli("--kubeconfig", admin, "vm", "check", "unregistered", "-o", "json").stdout)
        assert [f for f in doc["findings"] if f["check"] == "binding-not-registered"] == []
    finally:
        with kv.kube() as k:
            for n in vms:
                k.delete(VIRTUAL_MACHINE, n, "default")
        assert cli("--kubeconfig", admin, "disable", "--binding-name", "other").exit_code == 0


def test_the_same_mac_twice_in_one_vm_is_admitted_and_vm_check_finds_it(kv: ControlPlane, cli: Any) -> None:
    admin = str(kv.admin_kubeconfig)
    vm = yaml.safe_load(cli("vm", "create", "twice", "--network", "dataplane", "--network", "two=dataplane",
                            "--mac", "dataplane=02:00:00:00:03:01", "--mac", "two=02:00:00:00:03:01",
                            "--offline").stdout)
    with kv.kube() as k:
        k.create(VIRTUAL_MACHINE, vm, "default")
    try:
        r = cli("--kubeconfig", admin, "vm", "check", "twice")
        assert r.exit_code == ExitCode.FINDINGS
        assert "MAC 02:00:00:00:03:01 is on interfaces 'dataplane' and 'two' of this VM" in r.stdout
    finally:
        with kv.kube() as k:
            k.delete(VIRTUAL_MACHINE, "twice", "default")


def test_vm_convert_output_is_admitted(kv: ControlPlane, cli: Any) -> None:
    admin = str(kv.admin_kubeconfig)
    legacy = yaml.safe_load(cli("vm", "create", "legacy", "--network", "dataplane", "--mac", "auto",
                                "--offline").stdout)
    legacy["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][1] = {
        "name": "dataplane", "macvtap": {}, "macAddress": "02:00:00:00:04:01"}
    # Created before the cluster's upgrade: today KubeVirt's admission refuses the core binding on create.
    with kv.without_admission("virt-api-validator"), kv.kube() as k:
        k.create(VIRTUAL_MACHINE, legacy, "default")
    try:
        r = cli("--kubeconfig", admin, "vm", "convert", "legacy")
        assert r.exit_code == 0, r.stderr  # the update went through KubeVirt's VM admitter
        assert "virtualmachine.kubevirt.io/legacy converted" in r.stderr
        with kv.kube() as k:
            assert kv.binding_check(k.get(VIRTUAL_MACHINE, "legacy", "default")) == ""
    finally:
        with kv.kube() as k:
            k.delete(VIRTUAL_MACHINE, "legacy", "default")


def test_enable_and_disable_pass_the_kubevirt_cr_admitter(kv: ControlPlane, cli: Any) -> None:
    admin = str(kv.admin_kubeconfig)
    # A control: the KubeVirt CR admitter is live and refuses what it refuses.
    with kv.kube() as k, pytest.raises(MacvtapctlError) as err:
        k.merge_patch(KUBEVIRT, "kubevirt", {"spec": {"configuration": {
            "additionalGuestMemoryOverheadRatio": "0.5"}}}, "kubevirt")
    assert "admission webhook" in str(err.value)
    for args in (["disable"], ["enable"], ["enable"], ["enable", "--binding-name", "mvt2"],
                 ["disable", "--binding-name", "mvt2"], ["disable"], ["enable"]):
        r = cli("--kubeconfig", admin, *args)
        assert r.exit_code == 0, (args, r.stderr)
    assert "kubevirt.kubevirt.io/kubevirt configured" in r.stderr
    with kv.kube() as k:
        binding = k.get(KUBEVIRT, "kubevirt", "kubevirt")["spec"]["configuration"]["network"]["binding"]
    assert binding == {"macvtap": {"domainAttachmentType": "tap"}}
