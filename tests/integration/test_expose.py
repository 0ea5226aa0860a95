"""`expose`, `unexpose`, `exposed` against the real API server."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from macvtapctl.errors import ExitCode
from macvtapctl.kube.resources import (
    CLUSTER_ROLE,
    CLUSTER_ROLE_BINDING,
    CONFIGMAP,
    DAEMONSET,
    NAMESPACE,
    NETWORK_ADDONS_CONFIG,
)
from tests.conftest import resource_versions
from tests.harness.concurrency import all_at_once

CM = "macvtap-deviceplugin-config"


@pytest.fixture(autouse=True)
def clean(control_plane):
    """Every test starts without any device-plugin ConfigMap."""
    def wipe() -> None:
        with control_plane.kube() as k:
            for cm in k.list(CONFIGMAP, field_selector=f"metadata.name={CM}"):
                k.delete(CONFIGMAP, CM, cm["metadata"]["namespace"])
    wipe()
    yield
    wipe()


def conf(control_plane, ns: str = "macvtap", name: str = CM) -> list:
    with control_plane.kube() as k:
        return json.loads(k.get(CONFIGMAP, name, ns)["data"]["DP_MACVTAP_CONF"])


def seed(control_plane, text: str, ns: str = "macvtap", name: str = CM, **meta) -> dict:
    with control_plane.kube() as k:
        if k.get_or_none(NAMESPACE, ns) is None:
            k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        return k.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": name, "namespace": ns, **meta},
                                    "data": {"DP_MACVTAP_CONF": text}}, ns)


def rv(control_plane, ns: str = "macvtap", name: str = CM) -> str | None:
    return resource_versions(control_plane, [(CONFIGMAP, name, ns)])[f"configmaps/{ns}/{name}"]


def test_expose_creates_then_is_unchanged(cli, admin, control_plane) -> None:
    r = cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane", "--capacity", "50")
    assert r.exit_code == 0, r.stderr
    assert f"configmap/{CM} created" in r.stderr
    assert conf(control_plane) == [{"name": "dataplane", "lowerDevice": "eth0", "mode": "bridge", "capacity": 50}]
    before = rv(control_plane)
    r = cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane", "--capacity", "50")
    assert r.stderr.rstrip().endswith(f"configmap/{CM} unchanged")
    assert rv(control_plane) == before


def test_upsert_keeps_other_entries_verbatim_and_warns_by_name(cli, admin, control_plane) -> None:
    seed(control_plane, json.dumps([
        {"name": "legacy", "master": "eth1"},
        {"name": "dataplane", "lowerDevice": "eth0", "mode": "vepa", "capacity": 10},
    ]))
    r = cli("--kubeconfig", admin, "expose", "eth0", "--name", "dataplane", "--mode", "private")
    assert r.exit_code == 0, r.stderr
    assert ("Warning: entry 'legacy': key 'master' is not read by the device plugin: write 'lowerDevice'; empty "
            "lowerDevice: no device would ever be advertised (entry refused)") in r.stderr
    assert conf(control_plane) == [
        {"name": "legacy", "master": "eth1"},
        {"name": "dataplane", "lowerDevice": "eth0", "mode": "private", "capacity": 100},
    ]
    assert cli("--kubeconfig", admin, "expose", "bond0.100").exit_code == 0
    assert [e["name"] for e in conf(control_plane)] == ["legacy", "dataplane", "bond0.100"]


def test_malformed_config_is_never_overwritten(cli, admin, control_plane) -> None:
    text = '[\n  {"name": "dataplane", "lowerDevice": "eth0"}\n  {"name": "x"}\n]\n'
    seed(control_plane, text)
    before = rv(control_plane)
    r = cli("--kubeconfig", admin, "expose", "eth1")
    assert r.exit_code == ExitCode.PRECONDITION
    assert "Expecting ',' delimiter at line 3 column 3" in r.stderr
    assert r.stderr.count("\n") == 1
    assert rv(control_plane) == before


def test_the_user_guide_config_is_read_as_upstream_and_rewritten_plain(cli, admin, control_plane) -> None:
    """Trailing comma and key case (issue 13.1): read with a warning each, the rewrite drops the comma and
    spells the keys as upstream documents them; the entry someone else wrote keeps its values."""
    seed(control_plane, '[\n  {"Name": "dataplane", "LowerDevice": "eth0", "comment": "rack 4"},\n]\n')
    r = cli("--kubeconfig", admin, "expose", "eth1")
    assert r.exit_code == 0, r.stderr
    assert "trailing comma at line 2 column 68" in r.stderr
    assert "read 'Name' as 'name', 'LowerDevice' as 'lowerDevice'" in r.stderr
    assert "unknown key 'comment' is ignored" in r.stderr
    assert conf(control_plane) == [
        {"name": "dataplane", "lowerDevice": "eth0", "comment": "rack 4"},
        {"name": "eth1", "lowerDevice": "eth1", "mode": "bridge", "capacity": 100},
    ]
    r = cli("--kubeconfig", admin, "expose", "eth1")
    assert r.exit_code == 0 and "unchanged" in r.stderr + r.stdout


def test_a_duplicated_name_collapses_into_the_one_expose_writes(cli, admin, control_plane) -> None:
    seed(control_plane, json.dumps([{"name": "dp", "lowerDevice": "eth0"}, {"name": "other", "lowerDevice": "eth2"},
                                    {"name": "dp", "lowerDevice": "eth1"}]))
    r = cli("--kubeconfig", admin, "expose", "eth3", "--name", "dp")
    assert r.exit_code == 0, r.stderr
    assert "duplicate name; entry 2 is used" in r.stderr
    assert conf(control_plane) == [{"name": "dp", "lowerDevice": "eth3", "mode": "bridge", "capacity": 100},
                                   {"name": "other", "lowerDevice": "eth2"}]


@pytest.mark.parametrize(("args", "needle"), [
    (["eth/0"], '"eth/0"'), (["x" * 16], "at most 15"), (["eth0", "--mode", "passthru", "--capacity", "2"], "passthru"),
    (["eth0", "--mode", "source"], '"source"'),
    (["eth0", "--capacity", "0"], "capacity 0"), (["eth0", "--capacity", "10001"], "capacity 10001"),
    (["eth0", "--name", "bad name"], '"bad name"'), ([], "LOWER_DEVICE is required"),
    (["eth0", "--all"], "--all"),
])
def test_bad_input_writes_nothing(cli, admin, control_plane, args, needle) -> None:
    r = cli("--kubeconfig", admin, "expose", *args)
    assert r.exit_code == ExitCode.USAGE
    assert needle in r.stderr
    assert r.stderr.count("\n") == 1
    assert rv(control_plane) is None


def test_expose_all_refuses_to_drop_entries_without_force(cli, admin, control_plane) -> None:
    assert cli("--kubeconfig", admin, "expose", "eth0").exit_code == 0
    before = rv(control_plane)
    r = cli("--kubeconfig", admin, "expose", "--all")
    assert r.exit_code == ExitCode.PRECONDITION
    assert "eth0" in r.stderr and "--force" in r.stderr
    assert rv(control_plane) == before
    assert cli("--kubeconfig", admin, "expose", "--all", "--force").exit_code == 0
    assert conf(control_plane) == []
    r = cli("--kubeconfig", admin, "expose", "--all")
    assert r.stderr.rstrip().endswith("unchanged")


def test_twenty_concurrent_exposes_leave_twenty_entries(control_plane) -> None:
    from macvtapctl.kube.options import DryRun
    from macvtapctl.ops.expose import entry_for, expose
    from macvtapctl.output import Printer

    seed(control_plane, "[]")

    def one(i: int) -> None:
        with control_plane.kube() as k:
            expose(k, Printer(io.StringIO(), io.StringIO()), DryRun.NONE, entry_for(f"eth{i}", None, "bridge", 100))

    assert all_at_once(one, 20) == []
    assert sorted(e["name"] for e in conf(control_plane)) == sorted(f"eth{i}" for i in range(20))


def test_twenty_concurrent_expose_processes_race_to_create_the_configmap(control_plane, admin) -> None:
    """20 `macvtapctl expose` processes against a namespace that has neither the namespace nor the ConfigMap:
    the losers of the create race re-read and update; every run exits 0 and every entry is kept."""
    import subprocess
    import sys


    ns = "expose-race"
    cmd = [sys.executable, "-m", "macvtapctl", "--kubeconfig", admin, "expose"]
    procs = [subprocess.Popen([*cmd, f"eth{i}", "--dp-namespace", ns], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(20)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    try:
        assert [code for code, _ in results] == [0] * 20, [err for code, err in results if code]
        with control_plane.kube() as k:
            cm = k.get(CONFIGMAP, CM, ns)
        entries = json.loads(cm["data"]["DP_MACVTAP_CONF"])
        assert sorted(e["name"] for e in entries) == sorted(f"eth{i}" for i in range(20))
    finally:
        with control_plane.kube() as k:
            k.delete(NAMESPACE, ns)


def test_unexpose_and_exposed(cli, admin, control_plane) -> None:
    for dev in ("eth0", "eth1"):
        assert cli("--kubeconfig", admin, "expose", dev).exit_code == 0
    table = cli("--kubeconfig", admin, "exposed")
    assert table.stdout.splitlines() == ["NAME   LOWER DEVICE   MODE     CAPACITY",
                                         "eth0   eth0           bridge   100",
                                         "eth1   eth1           bridge   100"]
    doc = yaml.safe_load(cli("--kubeconfig", admin, "exposed", "-o", "yaml").stdout)
    assert doc["namespace"] == "macvtap"
    assert [e["resource"] for e in doc["entries"]] == ["macvtap.network.kubevirt.io/eth0",
                                                       "macvtap.network.kubevirt.io/eth1"]
    assert cli("--kubeconfig", admin, "unexpose", "eth0").exit_code == 0
    assert [e["name"] for e in conf(control_plane)] == ["eth1"]
    r = cli("--kubeconfig", admin, "unexpose", "eth0")
    assert r.exit_code == ExitCode.PRECONDITION
    assert "'eth0' is not exposed" in r.stderr


def test_namespace_discovery_and_dp_namespace(cli, admin, control_plane) -> None:
    seed(control_plane, "[]", ns="cluster-network-addons")
    assert cli("--kubeconfig", admin, "expose", "eth0").exit_code == 0
    assert conf(control_plane, ns="cluster-network-addons")[0]["name"] == "eth0"
    seed(control_plane, "[]", ns="second")
    r = cli("--kubeconfig", admin, "expose", "eth1")
    assert r.exit_code == ExitCode.USAGE
    assert "cluster-network-addons, second" in r.stderr
    assert cli("--kubeconfig", admin, "expose", "eth1", "--dp-namespace", "second").exit_code == 0
    assert conf(control_plane, ns="second")[0]["name"] == "eth1"


def test_cnao_owned_configmap(cli, admin, unprivileged, control_plane) -> None:
    owner = {"apiVersion": "networkaddonsoperator.network.kubevirt.io/v1", "kind": "NetworkAddonsConfig",
             "name": "cluster", "uid": "0b5d8c1e-0000-4000-8000-000000000001", "controller": True}
    seed(control_plane, "[]", ns="cnao", ownerReferences=[owner])
    before = rv(control_plane, ns="cnao")
    r = cli("--kubeconfig", admin, "expose", "eth0")
    assert r.exit_code == ExitCode.PRECONDITION
    assert "owned by NetworkAddonsConfig" in r.stderr and "devicePluginConfig" in r.stderr
    assert rv(control_plane, ns="cnao") == before
    # Once CNAO points at a user-owned ConfigMap, macvtapctl writes that one.
    with control_plane.kube() as k:
        k.create(NETWORK_ADDONS_CONFIG, {"apiVersion": "networkaddonsoperator.network.kubevirt.io/v1",
                                         "kind": "NetworkAddonsConfig", "metadata": {"name": "cluster"},
                                         "spec": {"macvtap": {"devicePluginConfig": "my-macvtap"}}}, strict=False)
    try:
        r = cli("--kubeconfig", admin, "expose", "eth0")
        assert r.exit_code == 0, r.stderr
        assert "configmap/my-macvtap created" in r.stderr
        assert conf(control_plane, ns="cnao", name="my-macvtap")[0]["lowerDevice"] == "eth0"
        assert rv(control_plane, ns="cnao") == before
        # Issue 13.18: the role `rbac` prints covers the ConfigMap expose follows (asked from the cluster).
        denied = cli("--kubeconfig", unprivileged, "expose", "eth1")
        assert denied.exit_code == ExitCode.FORBIDDEN
        r = cli("--kubeconfig", admin, "rbac", "--user", "jane", "--from-cluster", "-o", "json")
        assert r.exit_code == 0, r.stderr
        role, binding = json.loads(r.stdout)["items"]
        assert any(rule.get("resourceNames") == ["macvtap-deviceplugin-config", "my-macvtap"]
                   for rule in role["rules"])
        with control_plane.kube() as k:
            k.apply(CLUSTER_ROLE, role)
            k.apply(CLUSTER_ROLE_BINDING, binding)
        r = cli("--kubeconfig", unprivileged, "expose", "eth1")
        assert r.exit_code == 0, r.stderr
        assert [e["name"] for e in conf(control_plane, ns="cnao", name="my-macvtap")] == ["eth0", "eth1"]
    finally:
        with control_plane.kube() as k:
            k.delete(NETWORK_ADDONS_CONFIG, "cluster")
            k.delete(CONFIGMAP, "my-macvtap", "cnao")
            for res, name in ((CLUSTER_ROLE_BINDING, "macvtapctl-admin"), (CLUSTER_ROLE, "macvtapctl-admin")):
                if k.get_or_none(res, name):
                    k.delete(res, name)


def test_upstream_daemonset_needs_restart(cli, admin, control_plane) -> None:
    seed(control_plane, "[]", ns="upstream")
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "macvtap-cni", "namespace": "upstream"},
          "spec": {"selector": {"matchLabels": {"app": "macvtap"}}, "template": {
              "metadata": {"labels": {"app": "macvtap"}},
              "spec": {"containers": [{"name": "macvtap-cni", "image": "quay.io/kubevirt/macvtap-cni:v0.13.1",
                                       "envFrom": [{"configMapRef": {"name": CM}}]}]}}}}
    with control_plane.kube() as k:
        k.create(DAEMONSET, ds, "upstream")
    try:
        r = cli("--kubeconfig", admin, "expose", "eth0")
        assert r.exit_code == 0
        assert "Warning: DaemonSet upstream/macvtap-cni (upstream macvtap-cni) reads" in r.stderr
        r = cli("--kubeconfig", admin, "expose", "eth1", "--restart")
        assert "daemonset.apps/macvtap-cni restarted" in r.stderr
        with control_plane.kube() as k:
            got = k.get(DAEMONSET, "macvtap-cni", "upstream")
        assert "kubectl.kubernetes.io/restartedAt" in got["spec"]["template"]["metadata"]["annotations"]
    finally:
        with control_plane.kube() as k:
            k.delete(DAEMONSET, "macvtap-cni", "upstream")


def test_dry_runs_write_nothing(cli, admin, control_plane) -> None:
    r = cli("--kubeconfig", admin, "expose", "eth0", "--dry-run=client", "-o", "yaml")
    assert r.exit_code == 0
    docs = list(yaml.safe_load_all(r.stdout))  # a stream: the namespace it would create, then the ConfigMap
    assert "(dry run)" in r.stderr
    assert rv(control_plane) is None
    r = cli("--kubeconfig", admin, "expose", "eth0", "--dry-run=server")
    assert r.exit_code == 0, r.stderr
    assert "(server dry run)" in r.stderr
    assert rv(control_plane) is None
    cm = next(i for i in docs if i["kind"] == "ConfigMap")
    assert json.loads(cm["data"]["DP_MACVTAP_CONF"])[0]["lowerDevice"] == "eth0"


def test_unprivileged(cli, unprivileged, control_plane) -> None:
    r = cli("--kubeconfig", unprivileged, "expose", "eth0")
    assert r.exit_code == ExitCode.FORBIDDEN
    assert "cannot list configmaps in any namespace" in r.stderr
