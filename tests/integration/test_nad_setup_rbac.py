"""`nad`, `setup` and `rbac` against the real API server."""

from __future__ import annotations

import json

import pytest
import yaml

from macvtapctl.errors import ExitCode
from macvtapctl.kube.resources import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    CONFIGMAP,
    KUBEVIRT,
    NAD,
    VIRTUAL_MACHINE,
)
from tests.conftest import resource_versions, vm_manifest

CM = "macvtap-deviceplugin-config"


@pytest.fixture(autouse=True)
def clean(control_plane):
    def wipe() -> None:
        with control_plane.kube() as k:
            for cm in k.list(CONFIGMAP, field_selector=f"metadata.name={CM}"):
                k.delete(CONFIGMAP, CM, cm["metadata"]["namespace"])
            for n in k.list(NAD):
                k.delete(NAD, n["metadata"]["name"], n["metadata"]["namespace"])
    wipe()
    control_plane.reset_kubevirt("v1.5.0")
    yield
    wipe()


def nad(control_plane, name: str, ns: str = "default") -> dict | None:
    with control_plane.kube() as k:
        return k.get_or_none(NAD, name, ns)


def test_nad_create_shape_and_idempotency(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane").exit_code == 0
    r = cli("--kubeconfig", admin, "nad", "create", "dp", "--resource", "dataplane", "--mtu", "1400", "--promisc")
    assert r.exit_code == 0, r.stderr
    assert "networkattachmentdefinition.k8s.cni.cncf.io/dp created" in r.stderr
    assert "Warning" not in r.stderr
    got = nad(control_plane, "dp")
    assert got["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"] == "macvtap.network.kubevirt.io/dataplane"
    assert json.loads(got["spec"]["config"]) == {"cniVersion": "0.3.1", "name": "dp", "type": "macvtap",
                                                 "mtu": 1400, "promiscMode": True}
    rv = got["metadata"]["resourceVersion"]
    r = cli("--kubeconfig", admin, "nad", "create", "dp", "--resource", "dataplane", "--mtu", "1400", "--promisc")
    assert r.stderr.rstrip().endswith("dp unchanged")
    assert nad(control_plane, "dp")["metadata"]["resourceVersion"] == rv
    r = cli("--kubeconfig", admin, "nad", "create", "dp", "--resource", "dataplane")
    assert r.stderr.rstrip().endswith("dp configured")
    assert "mtu" not in json.loads(nad(control_plane, "dp")["spec"]["config"])


def test_nad_warns_when_resource_not_exposed(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "expose", "eth0").exit_code == 0
    r = cli("--kubeconfig", admin, "nad", "create", "x", "--resource", "nope", "-n", "kubevirt")
    assert r.exit_code == 0
    assert "Warning: resource 'nope' is not exposed (exposed: eth0)" in r.stderr
    assert "only VMs in namespace 'kubevirt'" in r.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["--mtu", "67"], "MTU 67"), (["--mtu", "70000"], "MTU 70000"), (["--cni-version", "2.0.0"], '"2.0.0"'),
    (["--resource", "bad/res"], '"bad/res"'),
])
def test_nad_bad_input(cli, admin, control_plane, args, needle) -> None:
    base = ["--kubeconfig", admin, "nad", "create", "dp"]
    if "--resource" not in args:
        base += ["--resource", "eth0"]
    r = cli(*base, *args)
    assert r.exit_code == ExitCode.USAGE
    assert needle in r.stderr
    assert nad(control_plane, "dp") is None


def test_nad_list_and_delete(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "expose", "eth0").exit_code == 0
    assert cli("--kubeconfig", admin, "nad", "create", "a", "--resource", "eth0").exit_code == 0
    assert cli("--kubeconfig", admin, "nad", "create", "b", "--resource", "eth9").exit_code == 0
    lines = cli("--kubeconfig", admin, "nad", "list").stdout.splitlines()
    assert lines == ["NAMESPACE   NAME   RESOURCE   EXPOSED", "default     a      eth0       yes",
                     "default     b      eth9       no"]
    listed = json.loads(cli("--kubeconfig", admin, "nad", "list", "-A", "-o", "json").stdout)
    assert listed["kind"] == "List" and len(listed["items"]) == 2
    vm = vm_manifest("vm-a", "--network", "n=default/a")
    with control_plane.kube() as k:
        from macvtapctl.kube.resources import NAMESPACE
        if k.get_or_none(NAMESPACE, "team") is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        k.create(VIRTUAL_MACHINE, vm, "team", strict=False)
    try:
        r = cli("--kubeconfig", admin, "nad", "delete", "a")
        assert r.exit_code == ExitCode.PRECONDITION
        assert "team/vm-a" in r.stderr
        assert nad(control_plane, "a") is not None
        assert cli("--kubeconfig", admin, "nad", "delete", "b").exit_code == 0
        assert nad(control_plane, "b") is None
        assert cli("--kubeconfig", admin, "nad", "delete", "a", "--force").exit_code == 0
        assert nad(control_plane, "a") is None
    finally:
        with control_plane.kube() as k:
            k.delete(VIRTUAL_MACHINE, "vm-a", "team")


def test_setup_end_to_end_then_unchanged(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.4.0")
    r = cli("--kubeconfig", admin, "setup", "eth0", "--name", "dataplane")
    assert r.exit_code == 0, r.stderr
    assert "kubevirt.kubevirt.io/kubevirt configured" in r.stderr
    assert f"configmap/{CM} created" in r.stderr or f"configmap/{CM} configured" in r.stderr
    assert "networkattachmentdefinition.k8s.cni.cncf.io/dataplane created" in r.stderr
    refs = [(KUBEVIRT, "kubevirt", "kubevirt"), (CONFIGMAP, CM, "macvtap"), (NAD, "dataplane", "default")]
    before = resource_versions(control_plane, refs)
    r = cli("--kubeconfig", admin, "setup", "eth0", "--name", "dataplane")
    assert r.exit_code == 0
    assert [line.split()[-1] for line in r.stderr.splitlines() if "/" in line.split()[0]] == ["unchanged"] * 3
    assert resource_versions(control_plane, refs) == before


def test_setup_client_dry_run_prints_a_gitops_stream(cli, admin, control_plane) -> None:
    control_plane.reset_kubevirt("v1.9.0")
    refs = [(KUBEVIRT, "kubevirt", "kubevirt"), (CONFIGMAP, CM, "macvtap"), (NAD, "eth0", "default")]
    before = resource_versions(control_plane, refs)
    r = cli("--kubeconfig", admin, "setup", "eth0", "--dry-run=client", "-o", "yaml")
    assert r.exit_code == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds[0] == "KubeVirt" and kinds[-2:] == ["ConfigMap", "NetworkAttachmentDefinition"]
    assert docs[0]["spec"]["configuration"]["developerConfiguration"]["disabledFeatureGates"] == [
        "ExternalNetResourceInjection"]
    status = [line for line in r.stderr.splitlines() if line.split()[1:2] in (["configured"], ["created"],
                                                                                ["unchanged"])]
    assert len(status) >= 3 and all(line.endswith("(dry run)") for line in status), r.stderr
    assert resource_versions(control_plane, refs) == before


def test_setup_server_dry_run_validates_and_writes_nothing(cli, admin, control_plane) -> None:
    refs = [(KUBEVIRT, "kubevirt", "kubevirt"), (CONFIGMAP, CM, "macvtap"), (NAD, "eth0", "default")]
    before = resource_versions(control_plane, refs)
    r = cli("--kubeconfig", admin, "setup", "eth0", "--dry-run=server")
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("(server dry run)") >= 3
    assert resource_versions(control_plane, refs) == before


def test_setup_bad_input_touches_nothing(cli, admin, control_plane) -> None:
    refs = [(KUBEVIRT, "kubevirt", "kubevirt"), (CONFIGMAP, CM, "macvtap")]
    before = resource_versions(control_plane, refs)
    for args in (["eth:0"], ["eth0", "--mtu", "10"], ["eth0", "--nad", "Bad"], ["eth0", "--mode", "source"]):
        r = cli("--kubeconfig", admin, "setup", *args)
        assert r.exit_code == ExitCode.USAGE, (args, r.stderr)
        assert r.stderr.count("\n") == 1
    assert resource_versions(control_plane, refs) == before


def test_rbac_role_is_enough_for_setup(cli, admin, unprivileged, control_plane) -> None:
    r = cli("rbac", "--user", "jane", "-o", "yaml")
    assert r.exit_code == 0
    role, binding = list(yaml.safe_load_all(r.stdout))
    assert binding["subjects"] == [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]
    # without the role: forbidden, naming what is missing
    denied = cli("--kubeconfig", unprivileged, "setup", "eth0")
    assert denied.exit_code == ExitCode.FORBIDDEN
    assert "cannot list kubevirts.kubevirt.io in any namespace" in denied.stderr
    with control_plane.kube() as k:
        k.apply(CLUSTER_ROLE, role)
        k.apply(CLUSTER_ROLE_BINDING, binding)
    try:
        r = cli("--kubeconfig", unprivileged, "setup", "eth0")
        assert r.exit_code == 0, r.stderr
        assert nad(control_plane, "eth0") is not None
        r = cli("--kubeconfig", unprivileged, "setup", "eth0")
        assert r.exit_code == 0, r.stderr
        r = cli("--kubeconfig", unprivileged, "vm", "create", "rbac-vm", "--network", "eth0", "--mac", "auto",
                "--apply")
        assert r.exit_code == 0, r.stderr
        assert cli("--kubeconfig", unprivileged, "vm", "check", "--all").exit_code == 0
    finally:
        with control_plane.kube() as k:
            if k.get_or_none(VIRTUAL_MACHINE, "rbac-vm", "default"):
                k.delete(VIRTUAL_MACHINE, "rbac-vm", "default")
        with control_plane.kube() as k:
            k.delete(CLUSTER_ROLE_BINDING, "macvtapctl-admin")
            k.delete(CLUSTER_ROLE, "macvtapctl-admin")


def test_rbac_options(cli) -> None:
    r = cli("rbac", "--serviceaccount", "ci/deployer", "-o", "json")
    doc = json.loads(r.stdout)
    assert doc["items"][1]["subjects"] == [{"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}]
    r = cli("rbac", "--user", "a", "--group", "b")
    assert r.exit_code == ExitCode.USAGE
    r = cli("rbac", "--serviceaccount", "nonamespace")
    assert r.exit_code == ExitCode.USAGE


def _foreign_nad(control_plane, name: str, config: dict, resource: str | None = None) -> None:
    """A NAD someone else wrote (field manager kubectl-client-side-apply)."""
    obj = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
           "metadata": {"name": name, "namespace": "default",
                        "annotations": ({"k8s.v1.cni.cncf.io/resourceName": resource} if resource else {})},
           "spec": {"config": json.dumps(config)}}
    with control_plane.kube() as k:
        k.field_manager = "kubectl-client-side-apply"
        k.create(NAD, obj, "default")


def test_someone_elses_nad_is_neither_overwritten_nor_deleted(cli, admin, control_plane) -> None:
    """Issue 13.4: a bridge NAD of the same name, or a macvtap NAD macvtapctl does not manage, is refused with
    exit 5 naming the writer; --force takes it over; nothing is written without it."""
    _foreign_nad(control_plane, "lan", {"cniVersion": "0.3.1", "name": "lan", "type": "bridge", "bridge": "br0"})
    _foreign_nad(control_plane, "mvt", {"cniVersion": "0.3.1", "name": "mvt", "type": "macvtap"},
                 "macvtap.network.kubevirt.io/eth0")
    before = resource_versions(control_plane, [(NAD, "lan", "default"), (NAD, "mvt", "default")])
    for args in (["nad", "create", "lan", "--resource", "eth0"], ["setup", "eth0", "--nad", "lan"],
                 ["nad", "delete", "lan"], ["nad", "create", "mvt", "--resource", "eth0", "--mtu", "1400"],
                 ["nad", "delete", "mvt"]):
        r = cli("--kubeconfig", admin, *args)
        assert r.exit_code == ExitCode.CONFLICT, (args, r.stderr)
        assert "kubectl-client-side-apply" in r.stderr and "--force" in r.stderr
    assert "is not a macvtap NAD (type 'bridge'" in cli("--kubeconfig", admin, "nad", "delete", "lan").stderr
    assert resource_versions(control_plane, [(NAD, "lan", "default"), (NAD, "mvt", "default")]) == before
    r = cli("--kubeconfig", admin, "nad", "create", "mvt", "--resource", "eth0", "--mtu", "1400", "--force")
    assert r.exit_code == 0, r.stderr
    assert "taking it over (--force)" in r.stderr
    assert json.loads(nad(control_plane, "mvt")["spec"]["config"])["mtu"] == 1400
    # Now macvtapctl manages it: no --force needed any more.
    assert cli("--kubeconfig", admin, "nad", "create", "mvt", "--resource", "eth0").exit_code == 0
    assert cli("--kubeconfig", admin, "nad", "delete", "mvt").exit_code == 0
    assert cli("--kubeconfig", admin, "nad", "delete", "lan", "--force").exit_code == 0
    assert nad(control_plane, "lan") is None and nad(control_plane, "mvt") is None


def test_a_nad_with_odd_plugins_is_listed_not_crashed_on(cli, admin, control_plane) -> None:
    """Issue 13.14: `plugins` that is not a list is someone's broken NAD, not a TypeError."""
    _foreign_nad(control_plane, "odd", {"cniVersion": "0.3.1", "name": "odd", "plugins": 5})
    assert cli("--kubeconfig", admin, "nad", "create", "ok", "--resource", "eth0").exit_code == 0
    r = cli("--kubeconfig", admin, "nad", "list")
    assert r.exit_code == 0, r.stderr
    assert "ok" in r.stdout and "odd" not in r.stdout


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_nad_create_writes_each_supported_cni_version(cli, admin, control_plane, version) -> None:
    """docs/reference.md promises --cni-version 0.4.0, 1.0.0 and 1.1.0: each is written into the NAD's config as
    given, and the second run is unchanged."""
    name = "v" + version.replace(".", "-")
    r = cli("--kubeconfig", admin, "nad", "create", name, "--resource", "eth0", "--cni-version", version)
    assert r.exit_code == 0, r.stderr
    config = json.loads(nad(control_plane, name)["spec"]["config"])
    assert (config["cniVersion"], config["type"]) == (version, "macvtap")
    again = cli("--kubeconfig", admin, "nad", "create", name, "--resource", "eth0", "--cni-version", version)
    assert again.exit_code == 0 and "unchanged" in again.stderr
