"""The node report `doctor` reads from each agent (GET /doctor), measured on real links in a network namespace of
its own, and what doctor concludes from it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from macvtapctl.manifests import nad as nadm
from macvtapctl.rules import doctor, dpconfig

from .helpers import ip

PROBE = """
import json, sys
from macvtapctl.agent import check
from macvtapctl.agent.netlink import host
removed = check.remove_check_leftovers(host())  # what the agent's first round does
print(json.dumps({"removed": removed, "report": check.node_report(
    "n1", document=check.file_document(sys.argv[1]), plugin_dir=sys.argv[2], owner=107, group=107, cni_bin_dir=sys.argv[3],
    tap_dir=sys.argv[4], dmi_dir=sys.argv[5])}))
"""


def test_node_report_and_what_doctor_makes_of_it(tmp_path: Path) -> None:
    ns = "mvcrep" + secrets.token_hex(3)
    ip("netns", "add", ns)
    try:
        def in_ns(*args: str) -> None:
            ip("-n", ns, *args)

        in_ns("link", "add", "lowera", "type", "veth", "peer", "name", "lowerz")  # no dummy module here
        in_ns("link", "set", "lowera", "mtu", "1500", "up")
        in_ns("link", "add", "lowerb", "link", "lowera", "type", "macvlan", "mode", "bridge")
        in_ns("link", "set", "lowerb", "up")
        in_ns("link", "add", "mvt0123456789ab", "link", "lowera", "type", "macvtap")  # allocated, never attached
        in_ns("link", "add", "mvtchkdeadbeef", "link", "lowera", "type", "macvtap")  # a killed check's test link
        conf = tmp_path / "DP_MACVTAP_CONF"
        entries = [{"name": "dataplane", "lowerDevice": "lowera"}, {"name": "nested", "lowerDevice": "lowerb"},
                   {"name": "gone", "lowerDevice": "gone0"}]
        conf.write_text(json.dumps(entries))
        plugins, cni_bin, taps, dmi = (tmp_path / d for d in ("plugins", "cnibin", "dev", "dmi"))
        for d in (plugins, cni_bin, taps, dmi):
            d.mkdir()
        (dmi / "sys_vendor").write_text("QEMU\n")
        (dmi / "product_name").write_text("Standard PC (Q35 + ICH9, 2009)\n")
        os.mknod(taps / "tap4242", 0o600 | 0o020000, os.makedev(10, 200))  # an attached tap, root-owned
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE, str(conf), str(plugins),
                              str(cni_bin), str(taps), str(dmi)], check=True, capture_output=True, text=True)
        doc = json.loads(out.stdout)
        report = doc["report"]
        assert doc["removed"] == ["mvtchkdeadbeef"]
    finally:
        ip("netns", "del", ns, check=False)

    by = {(c["id"], c["check"]): c for c in report["checks"]}
    assert by[("resource-capacity", "lower device lowera")]["status"] == "ok"
    assert by[("resource-capacity", "lower device gone0")]["status"] == "error"
    assert by[("l2-nested-lower", "lower device lowerb kind")]["status"] == "warning"
    assert by[("leaked-links", "leaked links")]["detail"].startswith("1 temporary macvtap link(s) on the node: "
                                                                      "mvt0123456789ab")
    # The test macvtap's /dev/tapN appeared in the real /dev, not in this one: what a KinD node sees.
    assert by[("kind-dev", "/dev/tapN visible")]["status"] == "error"
    assert by[("tap-ownership", "tap ownership")]["status"] == "error"
    assert by[("agent-health", "kubelet socket")]["status"] == "error"
    assert by[("agent-health", "CNI binary")]["status"] == "error"
    assert report["lowerDevices"]["lowera"] == {"mtu": 1500, "up": True, "kind": "veth"}
    assert by[("l2-nested-lower", "lower device lowera kind")]["detail"].startswith("is itself a veth link")
    assert report["virtualization"] == "QEMU"

    cm = {"kind": "ConfigMap", "metadata": {"name": "macvtap-deviceplugin-config", "namespace": "macvtap"},
          "data": {"DP_MACVTAP_CONF": json.dumps(entries)}}
    nad = nadm.render("dp", "default", "dataplane", mtu=9000)
    gone = nadm.render("gone", "default", "gone")
    node = {"kind": "Node", "metadata": {"name": "n1"}, "status": {"allocatable": {
        "macvtap.network.kubevirt.io/dataplane": "100", "macvtap.network.kubevirt.io/gone": "0"}}}
    s = doctor.Snapshot(configmaps=[cm], nads=[nad, gone], nodes=[node], reports={"n1": report})
    found = {(f.id, f.object): f for f in doctor.diagnose(s)}
    assert "lowera's MTU 1500 on node n1" in found[("nad-mtu", "networkattachmentdefinition/default/dp")].cause
    cap = found[("resource-capacity", "networkattachmentdefinition/default/gone")]
    assert cap.severity == "error" and "n1: gone0 does not exist on this node" in cap.cause
    for fid in ("kind-dev", "tap-ownership", "leaked-links", "l2-nested-lower", "agent-health", "virtualised-node"):
        assert (fid, "node/n1") in found, fid
    # Not a KinD node: the advice is the agent pod's /dev mount, not recreating a KinD cluster.
    assert found[("kind-dev", "node/n1")].fix.startswith("mount the node's /dev into the agent pod")
    node["spec"] = {"providerID": "kind://docker/dev/dev-worker"}
    kind = {(f.id, f.object): f for f in doctor.diagnose(s)}
    assert kind[("kind-dev", "node/n1")].fix.startswith("macvtapctl kind-config")
    # The report judged this ConfigMap's text; once the ConfigMap changes, its configuration checks are stale.
    assert report["configDigest"] == dpconfig.digest(cm["data"]["DP_MACVTAP_CONF"])
    cm["data"]["DP_MACVTAP_CONF"] = json.dumps(entries[:1])
    stale = {(f.id, f.object): f for f in doctor.diagnose(s)}
    assert ("node-report-stale", "node/n1") in stale and stale[("node-report-stale", "node/n1")].severity == "info"
    for fid in ("kind-dev", "l2-nested-lower"):
        assert (fid, "node/n1") not in stale, fid
    assert "does not exist on this node" not in stale[("resource-capacity", "networkattachmentdefinition/default/gone")
                                                      ].cause
