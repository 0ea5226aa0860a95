"""`install`, `uninstall`, `kind-config`: deploy the node agent (or enable macvtap in CNAO)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from macvtapctl import validate
from macvtapctl.cli.common import DryRunOption, ForceOption, connect, dry_run_of, printer_for, settings_of
from macvtapctl.errors import PreconditionError, TimeoutExceeded, UsageError
from macvtapctl.manifests import agent as agentm
from macvtapctl.output import Printer
from macvtapctl.settings import DryRun

INSTALL_HELP = """Deploy the macvtapctl node agent (device plugin + CNI) as a DaemonSet: namespace, ServiceAccount
(no API access needed), the device-plugin ConfigMap (created with [] only when absent; never overwritten) and the
DaemonSet, all server-side applied. --via cnao enables macvtap in an existing Cluster Network Addons Operator
instead. --wait waits until the agent is ready on every selected node and those nodes advertise the exposed
resources."""
UNINSTALL_HELP = """Remove what install created (the DaemonSet and ServiceAccount; the ConfigMap and namespace only
with --purge). First the agent is rolled to its uninstall mode on every node: it takes the CNI shim out of the
CNI bin dir (a shim without its agent would fail every pod's teardown) and deletes the macvtap links no pod owns.
Refused while VMs use macvtap, unless --force. --purge-node-resources also clears the stale
macvtap.network.kubevirt.io/* capacity the kubelet leaves on nodes."""
KIND_HELP = "Print a KinD cluster config whose nodes see the host's /dev (macvtap's /dev/tapN lives there)."


def _options(image: str, namespace: str, node_selector: list[str], toleration: list[str], cni_bin_dir: str,
             device_plugin_dir: str) -> agentm.InstallOptions:
    validate.check_dns_label(namespace, "--namespace")
    if not image or any(c.isspace() for c in image):
        raise UsageError(f'invalid --image "{image}": an image reference has no whitespace')
    return agentm.InstallOptions(
        image=image, namespace=namespace, node_selector=agentm.parse_node_selector(node_selector),
        tolerations=[agentm.parse_toleration(t) for t in toleration],
        cni_bin_dir=agentm.check_host_path(cni_bin_dir, "--cni-bin-dir"),
        device_plugin_dir=agentm.check_host_path(device_plugin_dir, "--device-plugin-dir"))


def install(
    ctx: typer.Context,
    image: Annotated[str, typer.Option("--image", help="Agent image.")] = agentm.DEFAULT_IMAGE,
    node_selector: Annotated[list[str] | None, typer.Option("--node-selector", metavar="KEY=VALUE",
                                                            help="Only these nodes; repeatable.")] = None,
    toleration: Annotated[list[str] | None, typer.Option(
        "--toleration", metavar="KEY[=VALUE][:EFFECT]|*", help="Tolerations (default: tolerate all); repeatable.")]
    = None,
    cni_bin_dir: Annotated[str, typer.Option("--cni-bin-dir")] = "/opt/cni/bin",
    device_plugin_dir: Annotated[str, typer.Option("--device-plugin-dir")] = "/var/lib/kubelet/device-plugins",
    via: Annotated[str, typer.Option("--via", metavar="agent|cnao", help="What deploys macvtap.")] = "agent",
    device_plugin_config: Annotated[str | None, typer.Option(
        "--device-plugin-config", metavar="CONFIGMAP", help="With --via cnao: a user-owned DP ConfigMap.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until ready on every selected node.")] = False,
    timeout: Annotated[str, typer.Option("--timeout", metavar="DURATION", help="For --wait.")] = "5m",
    dry_run: DryRunOption = "none",
) -> None:
    from macvtapctl.settings import parse_request_timeout

    settings = settings_of(ctx)
    fmt = settings.output_format(("table", "json", "yaml", "name"))
    mode = dry_run_of(dry_run)
    limit = parse_request_timeout(timeout) or 300.0
    if via not in ("agent", "cnao"):
        raise UsageError(f'invalid --via "{via}": must be agent or cnao')
    if device_plugin_config and via != "cnao":
        raise UsageError("--device-plugin-config only applies to --via cnao")
    if device_plugin_config:
        validate.check_dns_subdomain(device_plugin_config, "--device-plugin-config")
    # -n/--namespace (global, kubectl's) is the agent's namespace here; default "macvtap".
    namespace = settings.namespace or agentm.DEFAULT_NAMESPACE
    opts = _options(image, namespace, node_selector or [], toleration or [], cni_bin_dir, device_plugin_dir)
    printer = printer_for(settings)
    if via == "cnao":
        objs = [agentm.network_addons_config(device_plugin_config)]
    else:
        objs = [agentm.namespace(opts), agentm.service_account(opts), agentm.configmap(opts), agentm.daemonset(opts)]
    if mode is DryRun.CLIENT:
        for obj in objs:
            printer.status(_label(obj), "created", mode.suffix)
        _emit(printer, fmt, objs)
        return
    with connect(settings) as kube:
        if via == "cnao":
            result = [_cnao(kube, printer, mode, objs[0])]
        else:
            result = _apply_all(kube, printer, mode, objs, opts.namespace)
        if wait and mode is DryRun.NONE:
            if via == "cnao":
                printer.warn("--wait follows the macvtapctl agent; with --via cnao watch CNAO's macvtap-cni instead")
            else:
                wait_ready(kube, printer, opts, limit)
    _emit(printer, fmt, result)


def _emit(printer: Printer, fmt: str, objs: list[dict[str, Any]]) -> None:
    if fmt == "yaml":
        printer.yaml_stream(objs)
    elif fmt in ("json", "name"):
        printer.objects(objs, fmt, as_list=True)


def _label(obj: dict[str, Any]) -> str:
    from macvtapctl.output import resource_label

    return resource_label(obj)


def _resource_of(obj: dict[str, Any]) -> Any:
    from macvtapctl.kube import resources as r

    return {"Namespace": r.NAMESPACE, "ServiceAccount": r.SERVICE_ACCOUNT, "ConfigMap": r.CONFIGMAP,
            "DaemonSet": r.DAEMONSET, "NetworkAddonsConfig": r.NETWORK_ADDONS_CONFIG}[obj["kind"]]


def _apply_all(kube: Any, printer: Printer, mode: DryRun, objs: list[dict[str, Any]],
               namespace: str) -> list[dict[str, Any]]:
    from macvtapctl.kube.resources import NAMESPACE

    if mode is DryRun.SERVER and kube.get_or_none(NAMESPACE, namespace) is None:
        # A server dry run cannot create objects inside a namespace it did not really create: validate the
        # namespaced objects in "default" instead (schemas and field validation do not depend on it).
        printer.warn(f"namespace {namespace} does not exist yet: its objects are validated in namespace default")
        results = [_apply(kube, printer, mode, objs[0])]
        for obj in objs[1:]:
            probe = {**obj, "metadata": {**obj["metadata"], "namespace": "default"}}
            kube.apply(_resource_of(obj), probe, "default", dry_run=DryRun.SERVER)
            printer.status(_label(obj), "created", mode.suffix)
            results.append(obj)
        return results
    return [_apply(kube, printer, mode, obj) for obj in objs]


def _apply(kube: Any, printer: Printer, mode: DryRun, obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply, but write nothing when nothing would change (a server dry run tells)."""
    res = _resource_of(obj)
    ns = obj["metadata"].get("namespace")
    name = obj["metadata"]["name"]
    existing = kube.get_or_none(res, name, ns)
    if obj["kind"] == "ConfigMap":
        if existing is not None:  # the user's entries are never touched
            printer.status(_label(obj), "unchanged", mode.suffix)
            return dict(existing)
        result: dict[str, Any] = kube.create(res, obj, ns, dry_run=mode)
        printer.status(_label(obj), "created", mode.suffix)
        return result
    preview: dict[str, Any] = kube.apply(res, obj, ns, dry_run=DryRun.SERVER)
    if existing is not None and _content(preview) == _content(existing):
        printer.status(_label(obj), "unchanged", mode.suffix)
        return dict(existing)
    result = preview if mode is DryRun.SERVER else kube.apply(res, obj, ns)
    printer.status(_label(obj), "created" if existing is None else "configured", mode.suffix)
    return result


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """What an apply can change: everything but status and server-kept metadata. (A server dry run does not
    bump resourceVersion, so that cannot tell a no-op from a change.)"""
    meta = obj.get("metadata") or {}
    return {**{k: v for k, v in obj.items() if k not in ("metadata", "status")},
            "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}}


def _cnao(kube: Any, printer: Printer, mode: DryRun, obj: dict[str, Any]) -> dict[str, Any]:
    """Create the NetworkAddonsConfig `cluster`, or merge-patch macvtap into the existing one."""
    from macvtapctl.jsonmerge import dig
    from macvtapctl.kube.resources import NETWORK_ADDONS_CONFIG

    existing = kube.get_or_none(NETWORK_ADDONS_CONFIG, "cluster")
    label = NETWORK_ADDONS_CONFIG.label("cluster")
    if existing is None:
        result: dict[str, Any] = kube.create(NETWORK_ADDONS_CONFIG, obj, dry_run=mode)
        printer.status(label, "created", mode.suffix)
        return result
    want = obj["spec"]["macvtap"]

    def attempt() -> dict[str, Any]:
        nonlocal existing
        current = existing if existing is not None else kube.get(NETWORK_ADDONS_CONFIG, "cluster")
        existing = None  # a retry re-reads
        have = dig(current, "spec", "macvtap")
        if isinstance(have, dict) and all(have.get(k) == v for k, v in want.items()):
            printer.status(label, "unchanged", mode.suffix)
            return dict(current)
        patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
                 "spec": {"macvtap": want}}
        written: dict[str, Any] = kube.merge_patch(NETWORK_ADDONS_CONFIG, "cluster", patch, dry_run=mode)
        printer.status(label, "configured", mode.suffix)
        return written

    from macvtapctl.kube.retry import retry_on_conflict

    return retry_on_conflict(attempt, what=label)


def rollout(ds: dict[str, Any]) -> tuple[bool, int, int, int]:
    """(observed, desired, ready, updated) of a DaemonSet. A rollout the controller has not observed yet still
    shows the previous one's counts, so those mean nothing until `observed`."""
    st = ds.get("status") or {}
    desired, ready, updated = (int(st.get(k) or 0) for k in ("desiredNumberScheduled", "numberReady",
                                                                "updatedNumberScheduled"))
    observed = int(st.get("observedGeneration") or 0) >= int((ds.get("metadata") or {}).get("generation") or 1)
    return observed, desired, ready, updated


def readiness(kube: Any, opts: agentm.InstallOptions) -> tuple[bool, str, list[str]]:
    """(ready, summary, lagging nodes): the DaemonSet is ready everywhere and nodes advertise the resources."""
    from macvtapctl.kube import dpconfigmap
    from macvtapctl.kube.resources import DAEMONSET, NODE

    ds = kube.get_or_none(DAEMONSET, agentm.AGENT_NAME, opts.namespace) or {}
    observed, desired, ready, updated = rollout(ds)
    # Only the nodes the DaemonSet runs on (taints, selectors and affinity decide that, not us): a node it is not
    # scheduled on will never advertise, and must not make --wait time out.
    scheduled = _scheduled_nodes(kube, ds, opts.namespace)
    nodes = [n for n in kube.list(NODE) if n["metadata"]["name"] in scheduled]
    target = dpconfigmap.locate(kube, opts.namespace)
    cfg = target.config() if target.object is not None else None
    from macvtapctl import dpconfig

    wanted = [] if cfg is None or cfg.expose_all else [
        validate.full_resource_name(e.name) for e in dpconfig.usable_entries(cfg)[0]]
    lagging = []
    for node in nodes:
        alloc = (node.get("status") or {}).get("allocatable") or {}
        missing = [r for r in wanted if r not in alloc]
        if missing:
            lagging.append(f"{node['metadata']['name']} (not advertising {', '.join(missing)})")
    ds_ready = observed and desired > 0 and ready == desired and updated == desired
    summary = (f"agent ready on {ready}/{desired} node(s), {updated} updated; "
               f"{len(nodes) - len(lagging)}/{len(nodes)} node(s) advertise {len(wanted)} resource(s)")
    if not ds_ready:
        pending = "" if observed else ", the new rollout not observed yet"
        lagging.insert(0, f"DaemonSet {opts.namespace}/{agentm.AGENT_NAME}: {ready}/{desired} ready{pending}")
    return ds_ready and not lagging, summary, lagging


def _scheduled_nodes(kube: Any, ds: dict[str, Any], namespace: str) -> set[str]:
    """Nodes with a pod of this DaemonSet (its own scheduled set)."""
    from macvtapctl.kube.resources import POD

    labels = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:
        return set()
    selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return {p["spec"]["nodeName"] for p in kube.list(POD, namespace, label_selector=selector)
            if (p.get("spec") or {}).get("nodeName")}


def wait_ready(kube: Any, printer: Printer, opts: agentm.InstallOptions, limit: float) -> None:
    deadline = time.monotonic() + limit
    last = ""
    while True:
        ok, summary, lagging = readiness(kube, opts)
        if summary != last:
            printer.info(f"waiting: {summary}")
            last = summary
        if ok:
            printer.info("macvtapctl agent is ready on every selected node")
            return
        if time.monotonic() >= deadline:
            raise TimeoutExceeded(f"timed out after {limit:g}s waiting for the agent; lagging: {'; '.join(lagging)}")
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def uninstall(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the DP ConfigMap and the namespace.")] = False,
    purge_node_resources: Annotated[bool, typer.Option(
        "--purge-node-resources", help="Clear macvtap.network.kubevirt.io/* capacity left on nodes.")] = False,
    dry_run: DryRunOption = "none",
    force: ForceOption = False,
) -> None:
    settings = settings_of(ctx)
    mode = dry_run_of(dry_run)
    namespace = validate.check_dns_label(settings.namespace or agentm.DEFAULT_NAMESPACE, "--namespace")
    printer = printer_for(settings)
    from macvtapctl import dpconfig, vmlint
    from macvtapctl.kube import resources as r
    from macvtapctl.kube.facts import gather
    from macvtapctl.kube.vms import all_vms

    with connect(settings) as kube:
        try:
            facts = gather(kube, with_vm_macs=False)
        except PreconditionError:
            facts = vmlint.Facts()
        users = [f"{v['metadata']['namespace']}/{v['metadata']['name']}" for v in all_vms(kube)
                 if vmlint.uses_macvtap(v, facts)]
        if users and not force:
            raise PreconditionError(f"{len(users)} VM(s) use macvtap ({', '.join(users[:10])}); delete them first or "
                                    "pass --force")
        if mode is DryRun.NONE:
            # Always: a shim left in the CNI bin dir without its agent fails every pod's DEL (exit 11), so pod
            # teardown would keep failing on every node.
            _clean_nodes(kube, printer, namespace)
        targets: list[tuple[Any, str, str | None]] = [
            (r.DAEMONSET, agentm.AGENT_NAME, namespace), (r.SERVICE_ACCOUNT, agentm.AGENT_NAME, namespace)]
        if purge:
            targets += [(r.CONFIGMAP, dpconfig.CONFIGMAP_NAME, namespace), (r.NAMESPACE, namespace, None)]
        for res, name, ns in targets:
            if kube.get_or_none(res, name, ns) is None:
                continue
            if mode is not DryRun.CLIENT:
                kube.delete(res, name, ns, dry_run=mode)
            printer.status(res.label(name), "deleted", mode.suffix)
        if purge_node_resources:
            _purge_nodes(kube, printer, mode)


NODE_CLEANUP_TIMEOUT = 120.0


def _clean_nodes(kube: Any, printer: Printer, namespace: str) -> None:
    """Roll the agent to `agent --uninstall` on every node (same image, mounts and privileges): it takes the shim
    out of the CNI bin dir and deletes the links no pod owns, then reports ready. Nodes that do not finish in
    time are named; the DaemonSet is deleted either way."""
    from macvtapctl.errors import ConflictError
    from macvtapctl.kube.resources import DAEMONSET
    from macvtapctl.kube.retry import retry_on_conflict

    def roll() -> dict[str, Any] | None:
        ds = kube.get_or_none(DAEMONSET, agentm.AGENT_NAME, namespace)
        if ds is None:
            return None
        containers = ds["spec"]["template"]["spec"]["containers"]
        index = next((i for i, c in enumerate(containers) if c.get("name") == "agent"), None)
        if index is None or "--uninstall" in (containers[index].get("args") or []):
            return dict(ds)
        containers[index]["args"] = [*(containers[index].get("args") or []), "--uninstall"]
        # A merge patch replaces the containers list whole: guarded by the resourceVersion it was read at.
        patch = {"metadata": {"resourceVersion": ds["metadata"]["resourceVersion"]},
                 "spec": {"template": {"spec": {"containers": containers}}}}
        return dict(kube.merge_patch(DAEMONSET, agentm.AGENT_NAME, patch, namespace))

    try:
        ds = retry_on_conflict(roll, what=f"daemonset {namespace}/{agentm.AGENT_NAME}")
    except ConflictError as exc:
        printer.warn(f"cannot switch the agent to uninstall mode ({exc}); node files and links are left")
        return
    if ds is None:
        return
    deadline = time.monotonic() + NODE_CLEANUP_TIMEOUT
    while True:
        observed, desired, ready, updated = rollout(kube.get(DAEMONSET, agentm.AGENT_NAME, namespace))
        if observed and ready == updated == desired:
            printer.status(f"daemonset.apps/{agentm.AGENT_NAME}", f"cleaned {desired} node(s)")
            return
        if time.monotonic() >= deadline:
            printer.warn(f"only {updated if observed else 0}/{desired} node(s) finished cleaning up "
                         f"within {NODE_CLEANUP_TIMEOUT:g}s; the others keep the shim and their links")
            return
        time.sleep(1.0)


def _purge_nodes(kube: Any, printer: Printer, mode: DryRun) -> None:
    """The kubelet keeps extended resources of a plugin that is gone (kubernetes#52510): remove them."""
    from macvtapctl.kube.resources import NODE
    from macvtapctl.kube.retry import guarded_json_patch

    prefix = validate.RESOURCE_PREFIX + "/"

    def plan(node: dict[str, Any]) -> list[dict[str, Any]]:
        status = node.get("status") or {}
        return [{"op": "remove", "path": f"/status/{part}/{key.replace('/', '~1')}"}
                for part in ("capacity", "allocatable") for key in sorted(status.get(part) or {})
                if key.startswith(prefix)]

    for node in kube.list(NODE):
        name = node["metadata"]["name"]
        ops = plan(node)
        if not ops:
            continue
        keys = sorted({op["path"].rsplit("/", 1)[1].replace("~1", "/") for op in ops})
        if mode is not DryRun.CLIENT:
            # The kubelet updates node status all the time: re-read and re-plan when it did meanwhile.
            _, changed = guarded_json_patch(kube, NODE, name, None, plan, what=f"node {name}", dry_run=mode,
                                            subresource="status", current=node)
            if not changed:
                continue
        printer.status(NODE.label(name), f"patched (removed {', '.join(keys)})", mode.suffix)


def kind_config(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes: one control plane, the rest workers.")] = 2,
) -> None:
    settings = settings_of(ctx)
    fmt = settings.output_format(("table", "yaml", "json"))
    doc = agentm.kind_config(nodes)
    printer = printer_for(settings)
    if fmt == "json":
        printer.document(doc, "json")
    else:
        printer.yaml_stream([doc])
