"""`enable` / `disable` against the real API server, across KubeVirt versions."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from macvtapctl.errors import ExitCode
from macvtapctl.kube.resources import HYPERCONVERGED, KUBEVIRT, VIRTUAL_MACHINE
from tests.conftest import resource_versions
from tests.harness.concurrency import all_at_once

RICH_SPEC = {"configuration": {
    "developerConfiguration": {"featureGates": ["Snapshot", "HotplugVolumes"]},
    "network": {"binding": {"passt": {"sidecarImage": "quay.io/kubevirt/passt:v1", "migration": {"method": "link-refresh"}}},
                "permitBridgeInterfaceOnPodNetwork": False, "defaultNetworkInterface": "masquerade"},
    "cpuRequest": "100m",
}}


def kv_rv(cp) -> str:
    return resource_versions(cp, [(KUBEVIRT, "kubevirt", "kubevirt")])["kubevirts/kubevirt/kubevirt"]


def get_kv(cp) -> dict:
    with cp.kube() as k:
        return k.get(KUBEVIRT, "kubevirt", "kubevirt")


def test_v14_adds_gate_and_binding_keeping_everything(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.4.0", spec=json.loads(json.dumps(RICH_SPEC)))
    r = cli("--kubeconfig", admin, "enable")
    assert r.exit_code == 0, r.stderr
    assert "adding feature gate NetworkBindingPlugins" in r.stderr
    assert r.stderr.rstrip().endswith("kubevirt.kubevirt.io/kubevirt configured")
    conf = get_kv(control_plane)["spec"]["configuration"]
    assert conf["developerConfiguration"]["featureGates"] == ["Snapshot", "HotplugVolumes", "NetworkBindingPlugins"]
    assert conf["network"]["binding"]["macvtap"] == {"domainAttachmentType": "tap"}
    assert conf["network"]["binding"]["passt"] == RICH_SPEC["configuration"]["network"]["binding"]["passt"]
    assert conf["network"]["permitBridgeInterfaceOnPodNetwork"] is False
    assert conf["network"]["defaultNetworkInterface"] == "masquerade"
    assert conf["cpuRequest"] == "100m"


def test_second_run_is_unchanged_and_writes_nothing(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.4.0", spec=json.loads(json.dumps(RICH_SPEC)))
    assert cli("--kubeconfig", admin, "enable").exit_code == 0
    rv = kv_rv(control_plane)
    r = cli("--kubeconfig", admin, "enable")
    assert r.exit_code == 0
    assert r.stderr.rstrip().endswith("kubevirt.kubevirt.io/kubevirt unchanged")
    assert kv_rv(control_plane) == rv


def test_missing_feature_gate_list_is_created(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.1.0", spec={})
    assert cli("--kubeconfig", admin, "enable").exit_code == 0
    assert get_kv(control_plane)["spec"]["configuration"]["developerConfiguration"]["featureGates"] == [
        "NetworkBindingPlugins"]


def test_v15_adds_no_gate_and_warns_about_redundant_one(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.5.0", spec={"configuration": {
        "developerConfiguration": {"featureGates": ["NetworkBindingPlugins"]}}})
    r = cli("--kubeconfig", admin, "enable")
    assert r.exit_code == 0
    assert "Warning: feature gate NetworkBindingPlugins is listed in featureGates but is GA" in r.stderr
    conf = get_kv(control_plane)["spec"]["configuration"]
    assert conf["developerConfiguration"]["featureGates"] == ["NetworkBindingPlugins"]
    assert conf["network"]["binding"] == {"macvtap": {"domainAttachmentType": "tap"}}


def test_v19_disables_external_injection(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.9.0")
    r = cli("--kubeconfig", admin, "enable")
    assert r.exit_code == 0, r.stderr
    assert "disabling ExternalNetResourceInjection" in r.stderr
    dev = get_kv(control_plane)["spec"]["configuration"]["developerConfiguration"]
    assert dev["disabledFeatureGates"] == ["ExternalNetResourceInjection"]
    assert dev["featureGates"] == []


def test_v19_external_injector(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.9.0")
    r = cli("--kubeconfig", admin, "enable", "--external-injector")
    assert r.exit_code == 0
    assert "network-resources-injector" in r.stderr
    assert "disabledFeatureGates" not in get_kv(control_plane)["spec"]["configuration"]["developerConfiguration"]


def test_v10_is_refused_and_nothing_written(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.0.0")
    rv = kv_rv(control_plane)
    r = cli("--kubeconfig", admin, "enable")
    assert r.exit_code == ExitCode.PRECONDITION
    assert r.stderr.startswith("error: KubeVirt v1.0.0 is not supported")
    assert kv_rv(control_plane) == rv


def test_missing_status_needs_explicit_version(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt(None)
    rv = kv_rv(control_plane)
    r = cli("--kubeconfig", admin, "enable")
    assert r.exit_code == ExitCode.PRECONDITION
    assert "--kubevirt-version" in r.stderr
    assert kv_rv(control_plane) == rv
    r = cli("--kubeconfig", admin, "enable", "--kubevirt-version", "v1.4.0")
    assert r.exit_code == 0
    assert "NetworkBindingPlugins" in get_kv(control_plane)["spec"]["configuration"]["developerConfiguration"]["featureGates"]


def test_bad_input_is_rejected_before_any_request(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.5.0")
    rv = kv_rv(control_plane)
    for args, needle in ((["--binding-name", "Bad_Name"], '"Bad_Name"'),
                         (["--kubevirt-version", "latest"], '"latest"'),
                         (["--dry-run", "maybe"], '"maybe"')):
        r = cli("--kubeconfig", admin, "enable", *args)
        assert r.exit_code == ExitCode.USAGE
        assert needle in r.stderr
        assert r.stderr.count("\n") == 1
    assert kv_rv(control_plane) == rv


def test_dry_runs_write_nothing(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.4.0")
    rv = kv_rv(control_plane)
    r = cli("--kubeconfig", admin, "enable", "--dry-run=client", "-o", "yaml")
    assert r.exit_code == 0
    assert r.stderr.rstrip().endswith("kubevirt.kubevirt.io/kubevirt configured (dry run)")
    shown = yaml.safe_load(r.stdout)
    assert shown["spec"]["configuration"]["network"]["binding"]["macvtap"] == {"domainAttachmentType": "tap"}
    r = cli("--kubeconfig", admin, "enable", "--dry-run=server", "-o", "json")
    assert r.exit_code == 0
    assert r.stderr.rstrip().endswith("(server dry run)")
    assert json.loads(r.stdout)["spec"]["configuration"]["developerConfiguration"]["featureGates"] == [
        "NetworkBindingPlugins"]
    assert kv_rv(control_plane) == rv


def test_not_installed_and_several_crs(cli, admin, control_plane) -> None:
    with control_plane.kube() as k:
        k.delete(KUBEVIRT, "kubevirt", "kubevirt")
    try:
        r = cli("--kubeconfig", admin, "enable")
        assert r.exit_code == ExitCode.PRECONDITION
        assert r.stderr.startswith("error: KubeVirt is not installed")
        control_plane.reset_kubevirt("v1.5.0")
        # KubeVirt's admission refuses a second CR ("Kubevirt is already created"), but only once virt-operator
        # has installed its webhook: two created before that remain.
        with control_plane.without_admission("virt-operator-validator"):
            control_plane.reset_kubevirt("v1.5.0", namespace="other-kv", name="kv2")
        r = cli("--kubeconfig", admin, "enable")
        assert r.exit_code == ExitCode.PRECONDITION
        assert "kubevirt/kubevirt" in r.stderr and "other-kv/kv2" in r.stderr
    finally:
        with control_plane.kube() as k:
            if k.get_or_none(KUBEVIRT, "kv2", "other-kv"):
                k.delete(KUBEVIRT, "kv2", "other-kv")
        control_plane.reset_kubevirt("v1.5.0")


def test_unprivileged_user_is_forbidden(cli, unprivileged, control_plane) -> None:
    control_plane.reset_kubevirt("v1.5.0")
    rv = kv_rv(control_plane)
    r = cli("--kubeconfig", unprivileged, "enable")
    assert r.exit_code == ExitCode.FORBIDDEN
    assert "cannot list kubevirts.kubevirt.io in any namespace" in r.stderr
    assert kv_rv(control_plane) == rv


def test_concurrent_enables_lose_no_binding(control_plane) -> None:
    """Ten writers registering different bindings at once: the resourceVersion guard plus retries keep all."""
    from macvtapctl.kube.options import DryRun
    from macvtapctl.ops.binding import enable
    from macvtapctl.output import Printer

    control_plane.reset_kubevirt("v1.4.0", spec=json.loads(json.dumps(RICH_SPEC)))

    def one(i: int) -> None:
        with control_plane.kube() as k:
            enable(k, Printer(io.StringIO(), io.StringIO()), DryRun.NONE, binding_name=f"mvt{i}")

    assert all_at_once(one, 10) == []
    bindings = get_kv(control_plane)["spec"]["configuration"]["network"]["binding"]
    assert set(bindings) == {"passt"} | {f"mvt{i}" for i in range(10)}


@pytest.fixture
def hco_crd(control_plane):
    from macvtapctl.kube.resources import CRD

    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "hyperconvergeds.hco.kubevirt.io"},
           "spec": {"group": "hco.kubevirt.io", "scope": "Namespaced",
                    "names": {"kind": "HyperConverged", "plural": "hyperconvergeds", "singular": "hyperconverged",
                              "listKind": "HyperConvergedList"},
                    "versions": [{"name": "v1beta1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    with control_plane.kube() as k:
        if k.get_or_none(CRD, crd["metadata"]["name"]) is None:
            k.create(CRD, crd)
            import time
            for _ in range(100):
                conds = (k.get(CRD, crd["metadata"]["name"]).get("status") or {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                    break
                time.sleep(0.1)
    yield


def test_hco_managed_kubevirt_is_configured_through_hco(cli, admin, control_plane, hco_crd) -> None:
    with control_plane.kube() as k:
        if k.get_or_none(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt"):
            k.delete(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt")
        hco = k.create(HYPERCONVERGED, {
            "apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
            "metadata": {"name": "kubevirt-hyperconverged", "namespace": "kubevirt",
                         "annotations": {"kubevirt.kubevirt.io/jsonpatch": json.dumps(
                             [{"op": "add", "path": "/spec/configuration/cpuRequest", "value": "1"}])}},
            "spec": {"networkBinding": {"other": {"domainAttachmentType": "managedTap"}}}}, "kubevirt")
    control_plane.reset_kubevirt("v1.9.0", metadata={"ownerReferences": [{
        "apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged", "name": "kubevirt-hyperconverged",
        "uid": hco["metadata"]["uid"], "controller": True}]})
    kv_before = kv_rv(control_plane)
    try:
        r = cli("--kubeconfig", admin, "enable")
        assert r.exit_code == 0, r.stderr
        assert "managed by HyperConverged" in r.stderr
        assert r.stderr.rstrip().endswith("hyperconverged.hco.kubevirt.io/kubevirt-hyperconverged configured")
        assert kv_rv(control_plane) == kv_before  # HCO would revert a direct edit
        with control_plane.kube() as k:
            hco = k.get(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt")
        assert hco["spec"]["networkBinding"] == {"other": {"domainAttachmentType": "managedTap"},
                                                 "macvtap": {"domainAttachmentType": "tap"}}
        ops = json.loads(hco["metadata"]["annotations"]["kubevirt.kubevirt.io/jsonpatch"])
        assert ops[0]["path"] == "/spec/configuration/cpuRequest"
        assert ops[1] == {"op": "add", "path": "/spec/configuration/developerConfiguration/disabledFeatureGates",
                          "value": ["ExternalNetResourceInjection"]}
        r = cli("--kubeconfig", admin, "disable")
        assert r.exit_code == 0, r.stderr
        with control_plane.kube() as k:
            assert set(k.get(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt")["spec"]["networkBinding"]) == {"other"}
    finally:
        with control_plane.kube() as k:
            k.delete(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt")
        control_plane.reset_kubevirt("v1.5.0")


def test_hco_managed_kubevirt_v110_refuses_naming_hcos_injector_switch(cli, admin, control_plane, hco_crd) -> None:
    """KubeVirt v1.10 under a HyperConverged that switched its injector off (the v1beta1 view of the v1 field): exit
    3, one line naming the field and both ways out, nothing written; --external-injector proceeds."""
    with control_plane.kube() as k:
        if k.get_or_none(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt"):
            k.delete(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt")
        hco = k.create(HYPERCONVERGED, {
            "apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged",
            "metadata": {"name": "kubevirt-hyperconverged", "namespace": "kubevirt", "annotations": {
                "hco.kubevirt.io/v1-only-fields": json.dumps({"deployNetworkResourcesInjector": False})}},
            "spec": {}}, "kubevirt")
    control_plane.reset_kubevirt("v1.10.0", metadata={"ownerReferences": [{
        "apiVersion": "hco.kubevirt.io/v1beta1", "kind": "HyperConverged", "name": "kubevirt-hyperconverged",
        "uid": hco["metadata"]["uid"], "controller": True}]})
    kv_before = kv_rv(control_plane)
    hco_before = hco["metadata"]["resourceVersion"]
    try:
        r = cli("--kubeconfig", admin, "enable")
        assert r.exit_code == 3, r.stderr
        [line] = r.stderr.strip().splitlines()
        assert "deployNetworkResourcesInjector: false" in line and "install --injector" in line
        assert "--external-injector" in line and "Traceback" not in r.stderr
        with control_plane.kube() as k:
            assert k.get(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt")["metadata"]["resourceVersion"] \
                == hco_before
        assert kv_rv(control_plane) == kv_before
        r = cli("--kubeconfig", admin, "enable", "--external-injector")
        assert r.exit_code == 0, r.stderr
        with control_plane.kube() as k:
            after = k.get(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt")
        assert after["spec"]["networkBinding"] == {"macvtap": {"domainAttachmentType": "tap"}}
        assert "deployment" not in after["spec"]  # HCO's switch is read, never written
    finally:
        with control_plane.kube() as k:
            k.delete(HYPERCONVERGED, "kubevirt-hyperconverged", "kubevirt")
        control_plane.reset_kubevirt("v1.5.0")


def _vm(name: str, binding: str) -> dict:
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name, "namespace": "default"},
            "spec": {"runStrategy": "Halted", "template": {"spec": {
                "domain": {"devices": {"interfaces": [{"name": "net1", "binding": {"name": binding}}]},
                           "resources": {"requests": {"memory": "128Mi"}}},
                "networks": [{"name": "net1", "multus": {"networkName": "dataplane"}}]}}}}


def test_disable_refuses_while_vms_use_the_binding(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.5.0")
    assert cli("--kubeconfig", admin, "enable").exit_code == 0
    with control_plane.kube() as k:
        k.create(VIRTUAL_MACHINE, _vm("uses-macvtap", "macvtap"), "default", strict=False)
    try:
        rv = kv_rv(control_plane)
        r = cli("--kubeconfig", admin, "disable")
        assert r.exit_code == ExitCode.PRECONDITION
        assert "default/uses-macvtap" in r.stderr
        assert kv_rv(control_plane) == rv
        r = cli("--kubeconfig", admin, "disable", "--force")
        assert r.exit_code == 0
        assert "macvtap" not in (get_kv(control_plane)["spec"]["configuration"].get("network") or {}).get("binding", {})
        r = cli("--kubeconfig", admin, "disable", "--force")
        assert r.stderr.rstrip().endswith("unchanged")
    finally:
        with control_plane.kube() as k:
            k.delete(VIRTUAL_MACHINE, "uses-macvtap", "default")
