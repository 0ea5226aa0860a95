"""The whole macvtap chain as plain data, plus the problems that keep it from being complete (`status`).

Read-only. Each problem is one sentence naming the object and, where there is one, the command that fixes it.
"""

from __future__ import annotations

from typing import Any

from macvtapctl.errors import MacvtapctlError
from macvtapctl.kube.client import Kube


def collect(kube: Kube) -> dict[str, Any]:
    """Everything status shows, as plain data, plus the list of problems."""
    problems: list[str] = []
    doc: dict[str, Any] = {"kubevirt": _kubevirt(kube, problems)}
    doc["deviceplugin"], cfg, cm_name = _deviceplugin(kube, problems)
    doc["agents"] = _agents(kube, cm_name, problems)
    nad_res = _macvtap_nads(kube)
    doc["nodes"], advertised = _nodes(kube)
    doc["nads"] = _nads(nad_res, cfg, advertised, problems)
    doc["problems"] = problems
    doc["complete"] = not problems
    return doc


def _kubevirt(kube: Kube, problems: list[str]) -> dict[str, Any]:
    from macvtapctl import kubevirt as kvplan
    from macvtapctl.dig import dig
    from macvtapctl.kube.facts import registered_bindings
    from macvtapctl.kube.lookup import find_kubevirts

    kvs = find_kubevirts(kube)
    kv = kvs[0] if len(kvs) == 1 else None
    version = kvplan.observed_version_of(kv) if kv else None
    bindings = registered_bindings(kube, kv) if kv else {}
    tap = sorted(n for n, b in bindings.items() if (b or {}).get("domainAttachmentType") == "tap")
    phase = dig(kv, "status", "phase") if kv else None
    out: dict[str, Any] = {"installed": kv is not None, "version": version, "phase": phase or None,
                           "macvtapBindings": tap}
    if kv is None:
        problems.append("KubeVirt is not installed" if not kvs else "more than one KubeVirt CR")
        return out
    deploying = kvplan.deployment_problem(kv)
    if deploying:
        problems.append(deploying)
    parsed = kvplan.parse_version(version)
    if not tap:
        problems.append("no macvtap binding registered (run: macvtapctl enable)")
    state = kvplan.gates_of(kv, parsed) if parsed else None
    if state and not state.supported:
        problems.append(f"KubeVirt {version} has no network binding plugins (v1.1.0 or newer needed)")
    if state and state.binding_gate_missing:
        problems.append(f"feature gate {kvplan.BINDING_GATE} is missing (KubeVirt < v1.5)")
    if state and state.injection_on:
        out["note"] = (f"{kvplan.INJECTION_GATE} is on: network-resources-injector must add the macvtap resource "
                       "to VM pods")
    return out


def _deviceplugin(kube: Kube, problems: list[str]) -> tuple[dict[str, Any], Any, str]:
    from macvtapctl import dpconfig
    from macvtapctl.kube import dpconfigmap
    from macvtapctl.kube.resources import CONFIGMAP

    try:
        target = dpconfigmap.locate(kube, None)
    except MacvtapctlError as exc:  # several ConfigMaps, or CNAO's own: a finding, not a usage error
        problems.append(exc.message)
        found = kube.list(CONFIGMAP, field_selector=f"metadata.name={dpconfig.CONFIGMAP_NAME}")
        return ({"namespace": None, "configMap": dpconfig.CONFIGMAP_NAME, "present": bool(found) or None,
                 "exposeAll": False, "entries": [], "warnings": [],
                 "configMaps": [{"namespace": c["metadata"]["namespace"], "name": c["metadata"]["name"]}
                                for c in found]}, None, dpconfig.CONFIGMAP_NAME)
    cfg = None
    try:
        cfg = target.config() if target.object is not None else None
    except MacvtapctlError as exc:
        problems.append(exc.message)
    if target.object is None:
        problems.append(f"ConfigMap {target.name} not found (run: macvtapctl expose LOWER_DEVICE)")
    if cfg is not None:
        problems.extend(f"{target.label}: {p} — fix: macvtapctl expose LOWER_DEVICE --name NAME, or edit it"
                        for p in cfg.problems)
    out = {"namespace": target.namespace, "configMap": target.name, "present": target.object is not None,
           "exposeAll": bool(cfg and cfg.expose_all), "entries": [] if cfg is None else cfg.items,
           "warnings": [] if cfg is None else [n.text for n in cfg.notices],
           "configMaps": [] if target.object is None else [{"namespace": target.namespace, "name": target.name}]}
    return out, cfg, target.name


def _agents(kube: Kube, configmap: str, problems: list[str]) -> list[dict[str, Any]]:
    """Every macvtap device-plugin DaemonSet (the agent, macvtap-cni), the ConfigMap each reads, and the nodes
    where two run."""
    from macvtapctl import daemonset, plugins
    from macvtapctl.daemonset import pull_failures
    from macvtapctl.kube.lookup import daemonset_pods
    from macvtapctl.kube.resources import DAEMONSET

    found, pods = [], []
    serving = plugins.find(kube.list(DAEMONSET))
    for p, ds in serving:
        _, desired, ready, _ = daemonset.rollout(ds)
        row = {"namespace": p.namespace, "name": p.name, "kind": p.kind, "desired": desired, "ready": ready,
               "configMap": p.configmap}
        found.append(row)
        mine = daemonset_pods(kube, ds, p.namespace)
        pods += mine
        problem = daemonset.not_rolled_out(ds)
        if problem:
            problems.append(f"DaemonSet {row['namespace']}/{row['name']}: {problem}")
            problems += pull_failures(mine)
    if not found:
        problems.append("no macvtap agent DaemonSet found (run: macvtapctl install)")
    for node, both in plugins.shared_nodes([p for p, _ in serving], pods).items():
        problems.append(f"node {node}: {len(both)} macvtap device plugins run there "
                        f"({'; '.join(p.describe() for p in both)}) — fix: macvtapctl install --take-over")
    return found


def _macvtap_nads(kube: Kube) -> dict[tuple[str, str], str | None]:
    from macvtapctl.kube.resources import NAD
    from macvtapctl.manifests import nad as nadm

    return {(n["metadata"]["namespace"], n["metadata"]["name"]): nadm.resource_of(n)
            for n in kube.list(NAD) if nadm.is_macvtap(n)}


def _nodes(kube: Kube) -> tuple[list[dict[str, Any]], set[str]]:
    """Per node and resource: capacity, allocatable, and how many devices the pods there hold (in_use's rule)."""
    from macvtapctl import in_use, validate
    from macvtapctl.kube.resources import NODE, POD

    held = in_use.holders(kube.list(POD, field_selector=in_use.FIELD_SELECTOR))
    prefix = validate.RESOURCE_PREFIX + "/"
    rows, advertised = [], set()
    for node in kube.list(NODE):
        st = node.get("status") or {}
        cap, alloc = st.get("capacity") or {}, st.get("allocatable") or {}
        name = node["metadata"]["name"]
        for key in sorted(k for k in set(cap) | set(alloc) if k.startswith(prefix)):
            res = key[len(prefix):]
            rows.append({"node": name, "resource": res, "capacity": cap.get(key, "0"),
                         "allocatable": alloc.get(key, "0"), "inUse": len(held.get((name, res), []))})
            if str(alloc.get(key, "0")) not in ("0", ""):
                advertised.add(res)
    return rows, advertised


def _nads(nad_res: dict[tuple[str, str], str | None], cfg: Any, advertised: set[str],
          problems: list[str]) -> list[dict[str, Any]]:
    from macvtapctl import dpconfig

    names = {e.name for e in dpconfig.usable_entries(cfg)[0]} if cfg is not None else set()
    rows = []
    for (ns, name), res in sorted(nad_res.items()):
        exposed = bool(cfg is not None and (cfg.expose_all or res in names))
        rows.append({"namespace": ns, "name": name, "resource": res, "exposed": exposed,
                     "advertised": res in advertised})
        if not exposed:
            problems.append(f"NAD {ns}/{name}: resource {res!r} is not exposed")
        elif res not in advertised:
            problems.append(f"NAD {ns}/{name}: resource {res!r} is not advertised by any node")
    return rows
