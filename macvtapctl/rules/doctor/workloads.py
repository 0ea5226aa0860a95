"""doctor's rule 13: pods (virt-launcher included) and VMIs on macvtap that do not start, what their events and
conditions say (failures.py reads the messages), each known cause mapped to the fix the cluster's facts call for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from macvtapctl import identity, validate
from macvtapctl.dig import dig
from macvtapctl.rules import dpconfig, failures, kubevirt, nodes, vmlint
from macvtapctl.rules import nad as nadr
from macvtapctl.rules.doctor.finding import ERROR, INFO, WARNING, Finding, nad_fix, obj_ref, ref
from macvtapctl.rules.doctor.snapshot import Snapshot
from macvtapctl.rules.doctor.view import View

NETWORKS = "k8s.v1.cni.cncf.io/networks"


# Reasons that describe where a workload is, not why: the cause is in another message (or none is known yet).
CONSEQUENCES = ("BackOff", "Unhealthy", "PodSandboxNotReady", "ContainersNotReady", "ContainersNotInitialized",
                "PodCompleted", "GuestNotRunning")


# Warnings that say nothing about the workload's network and do not keep it from starting: the kubelet's DNS
# notes (no cluster DNS configured: the pod falls back to the Default policy; too many search domains or
# nameservers: the list is cut). Seen on the real node beside a CNI failure, where they were a second "error".
UNRELATED = ("MissingClusterDNS", "DNSConfigForming")


def failing_subjects(s: Snapshot, v: View) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], tuple[str, ...]]]:
    """Each pod (virt-launcher included) and VMI on macvtap that does not run, its NADs, and the VMI a launcher
    pod belongs to."""
    by_key = {(n["metadata"]["namespace"], n["metadata"]["name"]): n for n, _ in v.macvtap_nads}
    for pod in s.waiting:
        if dig(pod, "metadata", "deletionTimestamp"):
            continue  # going away, not failing to start
        nads = _nads_of(pod, by_key)
        if nads or _requests_macvtap(pod):
            vm = (pod["metadata"].get("labels") or {}).get("vm.kubevirt.io/name")
            yield {"kind": "Pod", **pod}, nads, (ref("virtualmachineinstance", vm, pod["metadata"]["namespace"]),
                                                 ) if vm else ()
    for vmi in s.vmis:
        nads = _nads_of({"kind": "VirtualMachineInstance", **vmi}, by_key)
        if nads and dig(vmi, "status", "phase") not in ("Running", "Succeeded") and not dig(
                vmi, "metadata", "deletionTimestamp"):
            yield {"kind": "VirtualMachineInstance", **vmi}, nads, ()


def _explain(s: Snapshot, v: View, obj: dict[str, Any], nads: list[dict[str, Any]], f: failures.Failure,
             verbatim: str) -> tuple[str, str, str | None] | None:
    """(finding id, cause, fix) for one known failure of a workload (None: not one of doctor's to say)."""
    md = obj["metadata"]
    describe = f"kubectl describe {obj['kind'].lower()} {md['name']} -n {md['namespace']}"
    if f.kind == failures.INSUFFICIENT:
        why, fix = _insufficient(s, v, f.detail, obj)
        return "workload-insufficient", f"cannot be scheduled: resource {f.detail!r}: {why}", fix
    if f.kind == failures.CNI_NOT_FOUND:
        agent = s.agents[0] if s.agents else None
        fix = f"macvtapctl install --cni-bin-dir {f.detail}"
        if agent is not None:
            image = next((c.get("image") for c in dig(agent, "spec", "template", "spec", "containers") or []), None)
            fix += f" --image {image}" if image else ""
            if agent["metadata"]["namespace"] != identity.DEFAULT_NAMESPACE:
                fix += f" --namespace {agent['metadata']['namespace']}"
        return ("workload-cni-not-found", f"the container runtime looks for the macvtap CNI plugin in {f.detail}, "
                f"where it is not installed ({verbatim})", fix)
    if f.kind == failures.MTU:
        with_mtu = [n for n in nads if isinstance((nadr.config_of(n) or {}).get("mtu"), int)]
        lowers = [dig(r, "lowerDevices", lower, "mtu") for n in with_mtu for r in s.reports.values()
                  if r and (lower := v.lower_of(nadr.resource_of(n)))]
        have = min((m for m in lowers if isinstance(m, int)), default=None)
        return ("workload-mtu", f"the NAD's mtu is above the lower device's: the pod's sandbox is refused "
                f"({verbatim})", nad_fix(with_mtu[0], s, mtu=have) if with_mtu and have else None)
    if f.kind == failures.TAP_DENIED:
        owned = [n for n in nads if {"owner", "group"} & set(nadr.config_of(n) or {})]
        cause = (f"qemu (uid {identity.QEMU_UID}) cannot open {f.detail or '/dev/tapN'}" + (
            f": NAD {obj_ref(owned[0])} sets owner/group, so the CNI gives the tap to them" if owned else "") +
            f" ({verbatim})")
        if not owned:
            return "workload-tap-denied", cause, "macvtapctl install (its CNI chowns /dev/tapN to 107:107)"
        # The tap was chowned when the pod was made: only a new launcher pod gets the NAD's new content.
        vm = md["name"] if obj["kind"] == "VirtualMachineInstance" else (md.get("labels") or {}).get(
            "vm.kubevirt.io/name")
        again = f" && kubectl delete vmi {vm} -n {md['namespace']}" if vm else ""
        return "workload-tap-denied", cause + (" (its VirtualMachine then starts a new one)" if vm else ""), \
            nad_fix(owned[0], s) + again
    if f.kind == failures.NO_DEVICE:
        version = v.kubevirt_version
        fix = ("deploy network-resources-injector (github.com/k8snetworkplumbingwg/network-resources-injector), which "
               "adds the NAD's macvtap.network.kubevirt.io resource to pods that ask for the network")
        if version is None or version[:2] < (1, 10):
            fix = f"macvtapctl enable (KubeVirt before v1.10 adds the request itself with {kubevirt.INJECTION_GATE} " \
                  f"off), or {fix}"
        return ("workload-no-device-request", "no injector added the macvtap device request to this pod, so the "
                f"CNI got no device ({verbatim})", fix)
    if f.kind == failures.TAP_INVALID:
        return ("workload-tap-invalid", "libvirt cannot use /dev/tap<ifindex> of the pod's macvtap link "
                f"(kubevirt#17392) ({verbatim})", describe)
    if f.kind == failures.MAC_IN_USE:
        vm = md["name"] if obj["kind"] == "VirtualMachineInstance" else (md.get("labels") or {}).get(
            "vm.kubevirt.io/name")
        fix = ("give the VM another MAC (macvtapctl vm create ... --mac auto picks a free one)" if vm else
               "give the pod another MAC (the \"mac\" of its k8s.v1.cni.cncf.io/networks entry) and recreate it")
        return ("workload-mac-in-use", "the MAC is already on another macvtap of the same lower device: every NIC "
                f"needs its own ({verbatim})", fix)
    return "workload-failing", verbatim, describe


def failing_workloads(s: Snapshot, v: View) -> Iterator[Finding]:
    """13. Pods (virt-launcher included) and VMIs on macvtap that do not run: what their events and conditions say,
    each known message mapped to its cause and the fix that works; an unknown one reported verbatim."""
    said: set[tuple[str, str, str]] = set()  # (VMI, kind, detail): a launcher's cause is not repeated on its VMI
    subjects = list(failing_subjects(s, v))
    for obj, nads, refs in subjects:
        where = obj_ref(obj)
        for reason, message in _messages(obj, s):
            f = failures.classify(message)
            key = (refs[0] if refs else where, f.kind, f.detail if f.kind != failures.UNKNOWN else message)
            if f.kind == failures.BINDING or key in said:
                continue  # the binding: vm-binding-not-registered says it, with its fix
            if f.kind == failures.UNKNOWN and reason in CONSEQUENCES + UNRELATED:
                continue  # the state a cause leaves (no sandbox, not ready, restarting), or not about it at all
            said.add(key)
            explained = _explain(s, v, obj, nads, f, f"{reason}: {message}")
            if explained is not None:
                fid, cause, fix = explained
                # A message nobody has classified is a warning: it may be the cause, or beside it.
                severity = WARNING if fid == "workload-failing" else ERROR
                yield Finding(fid, severity, where, cause, fix, refs=(*refs, *(obj_ref(n) for n in nads)))
    if s.events_error and subjects:
        yield Finding("events-unreadable", INFO, ref("cluster", "events"), f"events not read: {s.events_error}")


def _nads_of(obj: dict[str, Any], by_key: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    """The macvtap NADs a pod (its Multus annotation) or a VMI (its multus networks) attaches."""
    ns = obj["metadata"].get("namespace") or "default"
    names: list[str] = []
    if obj.get("kind") == "VirtualMachineInstance":
        names = [str((n.get("multus") or {}).get("networkName")) for n in dig(obj, "spec", "networks") or []
                 if (n.get("multus") or {}).get("networkName")]
    else:
        raw = str(dig(obj, "metadata", "annotations", NETWORKS) or "")
        try:
            parsed = json.loads(raw) if raw.strip().startswith("[") else None
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            names = [f"{e.get('namespace', ns)}/{e.get('name')}" for e in parsed if isinstance(e, dict)]
        else:
            names = [n.strip().split("@")[0] for n in raw.split(",") if n.strip()]
    out = []
    for name in names:
        key = vmlint.nad_ref(name, ns)
        if key in by_key:
            out.append(by_key[key])
    return out


def _requests_macvtap(pod: dict[str, Any]) -> bool:
    prefix = validate.RESOURCE_PREFIX + "/"
    for c in dig(pod, "spec", "containers") or []:
        res = c.get("resources") or {}
        if any(k.startswith(prefix) for k in [*(res.get("limits") or {}), *(res.get("requests") or {})]):
            return True
    return False


def _messages(obj: dict[str, Any], s: Snapshot) -> list[tuple[str, str]]:
    """(reason, message) of what this pod or VMI reports, the newest first: its Warning events, a waiting
    container's reason, a False condition's message."""
    uid = obj["metadata"].get("uid")
    key = (str(obj.get("kind")), obj["metadata"].get("namespace"), obj["metadata"].get("name"))
    events = [e for e in s.events if (dig(e, "involvedObject", "uid") == uid and uid) or (
        (dig(e, "involvedObject", "kind"), dig(e, "involvedObject", "namespace"), dig(e, "involvedObject", "name"))
        == key)]
    events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True)
    out = [(str(e.get("reason") or ""), str(e.get("message") or "")) for e in events]
    for cs in [*(dig(obj, "status", "initContainerStatuses") or []), *(dig(obj, "status", "containerStatuses") or [])]:
        waiting = dig(cs, "state", "waiting") or {}
        if waiting.get("message"):
            out.append((str(waiting.get("reason") or "Waiting"), str(waiting["message"])))
    for cond in dig(obj, "status", "conditions") or []:
        if cond.get("status") == "False" and cond.get("message"):
            out.append((str(cond.get("reason") or cond.get("type")), str(cond["message"])))
    unique: dict[str, str] = {}
    for reason, message in out:
        unique.setdefault(message, reason)  # the same message, repeated by events and conditions, once
    return [(reason, message) for message, reason in unique.items()]


def _insufficient(s: Snapshot, v: View, resource: str, obj: dict[str, Any] | None = None) -> tuple[str, str | None]:
    """Why a workload asking for `resource` cannot be scheduled, judged on the nodes it may run on (its
    nodeSelector: `vm create --node` pins a VM so)."""
    cfg = v.config
    if cfg is None or not (cfg.expose_all or resource in cfg.names()):
        return (f"resource {resource!r} is not exposed in the device-plugin ConfigMap",
                f"macvtapctl expose LOWER_DEVICE --name {resource}")
    lower = v.lower_of(resource) or "LOWER_DEVICE"
    selector: dict[str, str] = dig(obj or {}, "spec", "nodeSelector") or {}
    schedulable = [n for n in s.nodes if nodes.schedulable(n)]
    allowed = [n for n in schedulable if nodes.selected(n, selector)]
    full, empty = [], []
    for node in allowed:
        name = node["metadata"]["name"]
        have = v.advertised[name].get(resource, 0)
        if have == 0:
            empty.append(name)
        else:
            held = v.holders.get((name, resource), [])
            users = sorted(set(held))
            if len(held) >= have:
                full.append(f"{name}: all {have} in use by {', '.join(users[:5])}{' ...' if len(users) > 5 else ''}")
    if full and not empty:
        entry = cfg.find(resource) if not cfg.expose_all else None
        capacity = int((entry or {}).get("capacity") or dpconfig.DEFAULT_CAPACITY)
        return ("every device is in use (" + "; ".join(full) + ")",
                f"macvtapctl expose {lower} --name {resource} --capacity {capacity * 2}")
    excluded = [n for n in schedulable if n not in allowed and v.advertised[n["metadata"]["name"]].get(resource)]
    if selector and excluded:
        # The selector's terms that rule those nodes out (KubeVirt adds its own, which every node meets).
        ruling = sorted({f"{k}={v}" for n in excluded for k, v in selector.items()
                         if (dig(n, "metadata", "labels") or {}).get(k) != v})
        names = ", ".join(n["metadata"]["name"] for n in excluded)
        return (f"no node it may run on advertises it ({', '.join(empty) or 'no node matches its nodeSelector'}: "
                f"is {lower} on them, and the agent running? see their node reports below); {names} "
                f"advertise{'s' if len(excluded) == 1 else ''} it, but its nodeSelector {','.join(ruling)} rules "
                f"{'it' if len(excluded) == 1 else 'them'} out", None)
    return (f"no schedulable node advertises it ({', '.join(empty) or 'no node'}: is {lower} on them, and the "
            "agent running? see their node reports below)", None)
