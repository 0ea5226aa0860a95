"""`status`: the macvtap chain as tables — a view of doctor's snapshot, judged by doctor's rules.

One judge: `status` reads what `doctor` reads (ops/doctor.py), shows the facts doctor's checks derive (the
snapshot's View: the ConfigMap in effect, bindings, plugins, holders, what each node advertises), and its problems
are doctor's error findings, so the chain is "complete" exactly when `doctor` finds no error. The tables:
KubeVirt's version and bindings, the device-plugin ConfigMap in effect, each plugin and where each node's agent
reads its configuration, capacity per node and resource with the devices pods hold there, and the NADs. Read-only.
"""

from __future__ import annotations

from typing import Any

from macvtapctl import validate
from macvtapctl.dig import dig
from macvtapctl.kube.client import Kube
from macvtapctl.ops import doctor as doctor_ops
from macvtapctl.rules import daemonset, device_plugins, doctor, dpconfig, kubevirt


def collect(kube: Kube) -> dict[str, Any]:
    """Everything status shows, as plain data, plus the problems (doctor's errors)."""

    findings, s, v = doctor_ops.run(kube)
    return view(s, v, findings)


def view(s: doctor.Snapshot, v: doctor.View, findings: list[doctor.Finding]) -> dict[str, Any]:
    """The tables of a snapshot and its View (pure); `findings` are doctor's on the same snapshot."""
    problems = [problem(f) for f in findings if f.severity == doctor.ERROR]
    return {"kubevirt": _kubevirt(v), "deviceplugin": _deviceplugin(s, v), "agents": _agents(s, v),
            "nodes": _nodes(s, v), "nads": _nads(v), "problems": problems,
            "warnings": [problem(f) for f in findings if f.severity == doctor.WARNING], "complete": not problems}


def problem(f: doctor.Finding) -> str:
    """A doctor finding as one line: the object, the cause, and the fix when there is one."""
    return f"{f.object}: {f.cause}" + (f" (fix: {f.fix})" if f.fix else "")


def _kubevirt(v: doctor.View) -> dict[str, Any]:
    kv = v.kubevirt
    if kv is None:
        return {"installed": False, "version": None, "phase": None, "macvtapBindings": []}
    out: dict[str, Any] = {"installed": True, "version": kubevirt.observed_version_of(kv),
                           "phase": dig(kv, "status", "phase") or None, "macvtapBindings": v.macvtap_bindings}
    if v.kubevirt_version and kubevirt.gates_of(kv, v.kubevirt_version).injection_on:
        out["note"] = (f"{kubevirt.INJECTION_GATE} is on: network-resources-injector must add the macvtap resource "
                       "to VM pods")
    return out


def _deviceplugin(s: doctor.Snapshot, v: doctor.View) -> dict[str, Any]:
    cm, cfg = v.configmap, v.config
    every = [{"namespace": c["metadata"]["namespace"], "name": c["metadata"]["name"]} for c in s.configmaps]
    return {"namespace": cm["metadata"]["namespace"] if cm else None,
            "configMap": cm["metadata"]["name"] if cm else (s.cnao_configmap or dpconfig.CONFIGMAP_NAME),
            "present": cm is not None, "exposeAll": bool(cfg and cfg.expose_all),
            "entries": [] if cfg is None else cfg.items,
            "warnings": [] if cfg is None else [n.text for n in cfg.notices], "configMaps": every}


def _agents(s: doctor.Snapshot, v: doctor.View) -> list[dict[str, Any]]:
    """Every macvtap device-plugin DaemonSet, the ConfigMap it reads, and (the agent) where each node's copy
    reads it from: `api`, `file`, or null for a node without a report."""

    objects = {(ds["metadata"]["namespace"], ds["metadata"]["name"]): ds for ds in [*s.agents, *s.upstream]}
    rows = []
    for p in v.plugins:
        _, desired, ready, _ = daemonset.rollout(objects[(p.namespace, p.name)])
        row: dict[str, Any] = {"namespace": p.namespace, "name": p.name, "kind": p.kind, "desired": desired,
                               "ready": ready, "configMap": p.configmap}
        if p.kind == device_plugins.AGENT:
            nodes = device_plugins.nodes_of(p, s.agent_pods)
            row["configSources"] = {n: ((s.reports.get(n) or {}).get("configSource") or {}).get("source")
                                    for n in nodes}
        rows.append(row)
    return rows


def _nodes(s: doctor.Snapshot, v: doctor.View) -> list[dict[str, Any]]:
    """Per node and resource: capacity, allocatable, and how many devices the pods there hold (in_use's rule)."""
    prefix = validate.RESOURCE_PREFIX + "/"
    rows = []
    for node in s.nodes:
        cap, alloc = dig(node, "status", "capacity") or {}, dig(node, "status", "allocatable") or {}
        name = node["metadata"]["name"]
        for key in sorted(k for k in set(cap) | set(alloc) if k.startswith(prefix)):
            res = key[len(prefix):]
            rows.append({"node": name, "resource": res, "capacity": cap.get(key, "0"),
                         "allocatable": alloc.get(key, "0"), "inUse": len(v.holders.get((name, res), []))})
    return rows


def _nads(v: doctor.View) -> list[dict[str, Any]]:
    cfg = v.config
    names = {e.name for e in dpconfig.usable_entries(cfg)[0]} if cfg is not None else set()
    advertised = {r for resources in v.advertised.values() for r, devices in resources.items() if devices}
    rows = []
    for n, res in sorted(v.macvtap_nads, key=lambda t: (t[0]["metadata"]["namespace"], t[0]["metadata"]["name"])):
        rows.append({"namespace": n["metadata"]["namespace"], "name": n["metadata"]["name"], "resource": res,
                     "exposed": bool(cfg is not None and (cfg.expose_all or res in names)),
                     "advertised": res in advertised})
    return rows
