"""Cluster reads and writes at scale, against kubectl, on a local kube-apiserver + etcd with KubeVirt's CRDs and
admission (tests/controlplane): 5,000 VMs across 50 namespaces, 500 Nodes advertising macvtap capacity, 200
NADs, by default.

    .venv/bin/python benchmarks/scale.py [--vms 5000] [--namespaces 50] [--nodes 500] [--nads 200] [--runs 3]
                                          [--writes 1000]

Reads: each macvtapctl command against `kubectl get <the kinds it reads> -A -o json` on the same data, run
alternately, `runs` times each: median wall time and peak RSS. Writes: `vm create --count N --apply` against
`kubectl apply --server-side -f` of the same N VMs (rendered by `vm create --offline`), each into its own fresh
namespace, then both again (nothing changes: the idempotent rerun).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, Measured, Row, measured, median, record

RESOURCES = ("lan0", "lan1", "lan2", "lan3", "lan4")
RES = "macvtap.network.kubevirt.io/"

# (macvtapctl args, what kubectl reads for the same kinds)
READS: list[tuple[list[str], list[str]]] = [
    (["vm", "check", "-A", "-o", "json"],
     ["get", "virtualmachines,virtualmachineinstances,network-attachment-definitions", "-A", "-o", "json"]),
    (["nad", "list", "-A", "-o", "json"], ["get", "network-attachment-definitions", "-A", "-o", "json"]),
    # status reads what doctor reads (one judge, ops/status.py): the same kinds as doctor's row
    (["status", "-o", "json"],
     ["get", "nodes,pods,daemonsets,configmaps,network-attachment-definitions,virtualmachines,"
             "virtualmachineinstances", "-A", "-o", "json"]),
    (["exposed", "-o", "json"], ["get", "configmap", "-n", "macvtap", "macvtap-deviceplugin-config", "-o", "json"]),
    (["doctor", "-A", "-o", "json"],
     ["get", "nodes,pods,daemonsets,configmaps,network-attachment-definitions,virtualmachines,"
             "virtualmachineinstances", "-A", "-o", "json"]),
]


def parallel(fn: Any, items: list[Any], workers: int = 16) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(fn, items):
            pass


def populate(cp: Any, env: dict[str, str], args: argparse.Namespace) -> None:
    from macvtapctl.kube.resources import NAD, NAMESPACE, NODE, VIRTUAL_MACHINE
    from macvtapctl.manifests import nad as nadm

    cli = [sys.executable, "-m", "macvtapctl"]
    run = lambda *a: subprocess.run([*cli, *a], env=env, check=True, capture_output=True)  # noqa: E731
    run("enable")
    for i, res in enumerate(RESOURCES):
        run("expose", f"eth{i}", "--name", res)
    run("install")
    namespaces = [f"bench-{i:02d}" for i in range(args.namespaces)]
    with cp.kube() as k:
        parallel(lambda ns: k.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": ns}}), namespaces)
        nads = [(namespaces[i % len(namespaces)], f"net{i // len(namespaces)}", RESOURCES[i % len(RESOURCES)])
                for i in range(args.nads)]
        parallel(lambda n: k.create(NAD, nadm.render(n[1], n[0], n[2]), n[0]), nads)

        def node(i: int) -> None:
            name = f"node-{i:03d}"
            k.create(NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
            cap = {"cpu": "64", "memory": "256Gi", "pods": "250", **{RES + r: "1000" for r in RESOURCES}}
            k.merge_patch(NODE, name, {"status": {"capacity": cap, "allocatable": cap}}, subresource="status")

        parallel(node, list(range(args.nodes)))
        per_ns = args.vms // len(namespaces)
        vms: list[tuple[str, dict[str, Any]]] = []
        for j, ns in enumerate(namespaces):
            nets = sorted({n[1] for n in nads if n[0] == ns}) or ["net0"]
            out = subprocess.run([*cli, "-n", ns, "vm", "create", "vm", "--count", str(per_ns), "--network",
                                  nets[j % len(nets)], "--mac", "auto", "--offline", "-o", "json"], env=env,
                                 check=True, capture_output=True, text=True).stdout
            import json

            doc = json.loads(out)
            vms += [(ns, vm) for vm in (doc["items"] if doc.get("kind") == "List" else [doc])]
        started = time.perf_counter()
        parallel(lambda v: k.create(VIRTUAL_MACHINE, v[1], v[0]), vms)
        print(f"populated: {len(vms)} VMs in {len(namespaces)} namespaces ({time.perf_counter() - started:.0f} s), "
              f"{args.nodes} nodes, {len(nads)} NADs")


def reads(env: dict[str, str], kubectl: str, runs: int) -> list[Row]:
    cli = [sys.executable, "-m", "macvtapctl"]
    rows = []
    for ours_args, theirs_args in READS:
        ours: list[tuple[float, int]] = []
        theirs: list[tuple[float, int]] = []
        for _ in range(runs):  # alternately: both see the same machine and apiserver state
            ours.append(measured([*cli, *ours_args], env=env))
            theirs.append(measured([kubectl, *theirs_args], env=env))
        name = "macvtapctl " + " ".join(a for a in ours_args if a not in ("-o", "json"))
        o_t, t_t = median([t for t, _ in ours]), median([t for t, _ in theirs])
        o_m, t_m = max(m for _, m in ours) / 1024, max(m for _, m in theirs) / 1024
        rows += [Row("scale reads", f"{name}: time", o_t, t_t, "s", "kubectl get -A -o json", "<= 1.0x"),
                 Row("scale reads", f"{name}: peak RSS", o_m, t_m, "MiB", "kubectl get -A -o json")]
    return rows


def writes(env: dict[str, str], kubectl: str, count: int, work: Path) -> list[Row]:
    from macvtapctl.kube.resources import NAMESPACE  # noqa: F401 - the import proves the package is importable

    cli = [sys.executable, "-m", "macvtapctl"]
    for ns in ("bench-w-kubectl", "bench-w-macvtapctl"):
        subprocess.run([kubectl, "create", "namespace", ns], env=env, check=True, capture_output=True)
        subprocess.run([*cli, "-n", ns, "nad", "create", "wnet", "--resource", "lan0"], env=env, check=True,
                       capture_output=True)
    manifest = work / "vms.yaml"
    manifest.write_bytes(subprocess.run([*cli, "-n", "bench-w-kubectl", "vm", "create", "w", "--count", str(count),
                                         "--network", "wnet", "--mac", "auto", "--offline", "-o", "yaml"],
                                        env=env, check=True, capture_output=True).stdout)
    ours_argv = [*cli, "-n", "bench-w-macvtapctl", "vm", "create", "w", "--count", str(count), "--network", "wnet",
                 "--mac", "auto", "--apply"]
    theirs_argv = [kubectl, "apply", "--server-side", "-f", str(manifest)]
    rows = []
    for label in ("create", "rerun, unchanged"):
        t_theirs, m_theirs = measured(theirs_argv, env=env)
        t_ours, m_ours = measured(ours_argv, env=env)
        rows += [Row("scale writes", f"vm create --count {count} --apply ({label}): time", t_ours, t_theirs, "s",
                     "kubectl apply --server-side", "<= 0.5x"),
                 Row("scale writes", f"vm create --count {count} --apply ({label}): peak RSS", m_ours / 1024,
                     m_theirs / 1024, "MiB", "kubectl apply --server-side")]
    return rows


def install_wait(cp: Any, env: dict[str, str], kubectl: str, seconds: float) -> list[Row]:
    """`install --wait` while every node becomes ready over `seconds` (what the DaemonSet controller and kubelets
    would write; neither runs here), against `kubectl rollout status` of the same DaemonSet (a watch too; it
    follows the DaemonSet only). How long after the last change each returns, and its CPU time."""
    import threading

    from macvtapctl.kube.resources import DAEMONSET, NODE, POD

    ns, name = "macvtap", "macvtapctl-agent"
    with cp.kube() as k:
        nodes = [n["metadata"]["name"] for n in k.list(NODE)]
        ds = k.get(DAEMONSET, name, ns)
        labels = ds["spec"]["selector"]["matchLabels"]
        parallel(lambda n: k.create(POD, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-{n}", "namespace": ns, "labels": labels},
            "spec": {"nodeName": n, "automountServiceAccountToken": False,
                     "containers": [{"name": "agent", "image": "example.org/agent:v1"}]}}, ns), nodes)

    def ds_status(k: Any, ready: int) -> None:
        generation = k.get(DAEMONSET, name, ns)["metadata"]["generation"]
        k.merge_patch(DAEMONSET, name, {"status": {
            "desiredNumberScheduled": len(nodes), "numberReady": ready, "updatedNumberScheduled": ready,
            "currentNumberScheduled": len(nodes), "numberMisscheduled": 0, "numberAvailable": ready,
            "observedGeneration": generation}}, ns, subresource="status")

    def advertise(k: Any, node: str, count: str) -> None:
        cap = {"cpu": "64", "memory": "256Gi", "pods": "250", **{RES + r: count for r in RESOURCES}}
        k.merge_patch(NODE, node, {"status": {"capacity": cap, "allocatable": cap}}, subresource="status")

    rows = []
    for who, argv in (("macvtapctl install --wait", [sys.executable, "-m", "macvtapctl", "install", "--wait",
                                                     "--timeout", "10m"]),
                      ("kubectl rollout status", [kubectl, "rollout", "status", f"daemonset/{name}", "-n", ns,
                                                  "--timeout", "10m"])):
        with cp.kube() as k:
            parallel(lambda n: advertise(k, n, "0"), nodes)
            ds_status(k, 0)
        proc = Measured(argv, env=env)
        time.sleep(2)  # it has read everything once and waits
        last: list[float] = []

        def rollout(last: list[float] = last) -> None:
            with cp.kube() as k:
                step = max(1, len(nodes) // 50)
                for i in range(0, len(nodes), step):
                    parallel(lambda n: advertise(k, n, "1000"), nodes[i:i + step], workers=4)
                    if i + step >= len(nodes):
                        last.append(time.perf_counter())
                        ds_status(k, len(nodes))
                        return
                    ds_status(k, i + step)
                    time.sleep(seconds / 50)

        writer = threading.Thread(target=rollout)
        writer.start()
        writer.join()
        _elapsed, _peak, cpu = proc.finish()
        latency = proc.ended - last[0]  # from just before the last change was written to the process's exit
        print(f"  {who}: returned {latency:.2f} s after the last change, {cpu:.2f} CPU-s")
        rows.append((who, latency, cpu))
    (_, ours_l, ours_c), (_, theirs_l, theirs_c) = rows
    return [Row("install --wait", f"{len(nodes)} nodes: return after the last change", ours_l, theirs_l, "s",
                "kubectl rollout status"),
            Row("install --wait", f"{len(nodes)} nodes: CPU while waiting {seconds:.0f} s", ours_c, theirs_c,
                "CPU-s", "kubectl rollout status")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--nads", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writes", type=int, default=1000)
    parser.add_argument("--rollout", type=float, default=20.0, help="seconds over which the nodes become ready")
    args = parser.parse_args()
    from tests.controlplane.harness import ControlPlane, binaries, kubevirt_pins

    kubectl = str(binaries() / "kubectl")
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    cp = ControlPlane(work / "cp", kubevirt_pin=kubevirt_pins()[-1]).start()
    try:
        env = {**os.environ, "KUBECONFIG": str(cp.admin_kubeconfig), "NO_COLOR": "1", "CI": "true",
               "PYTHONPATH": str(REPO)}
        populate(cp, env, args)
        print(f"reads ({args.runs} alternate runs each, median time, peak RSS):")
        record(*reads(env, kubectl, args.runs))
        print(f"writes ({args.writes} VMs):")
        record(*writes(env, kubectl, args.writes, work))
        print(f"install --wait ({args.nodes} nodes ready over {args.rollout:.0f} s):")
        record(*install_wait(cp, env, kubectl, args.rollout))
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
