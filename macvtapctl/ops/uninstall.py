"""`uninstall`: take the agent out again — nodes first (the shim and the links no pod owns), then its objects;
and `--purge-node-resources`."""

from __future__ import annotations

from typing import Any

from macvtapctl import identity, validate
from macvtapctl.errors import ConflictError, PreconditionError
from macvtapctl.kube import resources as r
from macvtapctl.kube.client import Kube
from macvtapctl.kube.facts import gather
from macvtapctl.kube.follow import Caches, WaitExpired, Watch, until
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import DAEMONSET, NODE
from macvtapctl.kube.retry import guarded_json_patch, retry_on_conflict
from macvtapctl.kube.vms import all_vms
from macvtapctl.manifests import agent as agentm
from macvtapctl.ops import Reporter, injector
from macvtapctl.rules import vmlint
from macvtapctl.rules.daemonset import rollout, unfinished_nodes
from macvtapctl.rules.waits import cleaned


def uninstall(kube: Kube, report: Reporter, dry_run: DryRun, namespace: str, *, purge: bool = False,
              purge_node_resources: bool = False, force: bool = False) -> None:
    """Remove what install created: nodes first (the shim and links no pod owns), then the DaemonSet and
    ServiceAccount (with `purge` the ConfigMap and namespace); refused while VMs use macvtap unless `force`."""

    try:
        facts = gather(kube, with_vm_macs=False)
    except PreconditionError:
        facts = vmlint.Facts()
    users = [f"{v['metadata']['namespace']}/{v['metadata']['name']}" for v in all_vms(kube)
             if vmlint.uses_macvtap(v, facts)]
    if users and not force:
        raise PreconditionError(f"{len(users)} VM(s) use macvtap ({', '.join(users[:10])}); delete them first or "
                                "pass --force")
    if dry_run is DryRun.NONE:
        # Always: a shim left in the CNI bin dir without its agent fails every pod's DEL (exit 11), so pod
        # teardown would keep failing on every node.
        clean_nodes(kube, report, namespace)
    opts = agentm.InstallOptions(namespace=namespace)
    shared = [o for o in agentm.objects(opts) if o["kind"] in agentm.SHARED_KINDS] if purge else []
    for obj in [*reversed(agentm.own_objects(opts)), *reversed(shared)]:  # the shared ones last, as install's first
        res, name, ns = r.of(obj), obj["metadata"]["name"], obj["metadata"].get("namespace")
        if kube.get_or_none(res, name, ns) is None:
            continue
        if dry_run is not DryRun.CLIENT:
            kube.delete(res, name, ns, dry_run=dry_run)
        report.status(res.label(name), "deleted", dry_run.suffix)
    injector.remove(kube, report, dry_run, namespace)
    if purge_node_resources:
        purge_nodes(kube, report, dry_run)


NODE_CLEANUP_TIMEOUT = 120.0


def clean_nodes(kube: Kube, report: Reporter, namespace: str) -> None:
    """Roll the agent to `agent --uninstall` on every node (same image, mounts and privileges): it takes the shim
    out of the CNI bin dir and deletes the links no pod owns, then reports ready. Nodes that do not finish in
    time are named; the DaemonSet is deleted either way."""

    def roll() -> dict[str, Any] | None:
        ds = kube.get_or_none(DAEMONSET, identity.AGENT_NAME, namespace)
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
        return dict(kube.merge_patch(DAEMONSET, identity.AGENT_NAME, patch, namespace))

    try:
        ds = retry_on_conflict(roll, what=f"daemonset {namespace}/{identity.AGENT_NAME}")
    except ConflictError as exc:
        report.warn(f"cannot switch the agent to uninstall mode ({exc}); node files and links are left")
        return
    if ds is None:
        return

    def finished(caches: Caches) -> int | None:
        # Deleted meanwhile (not by us): the GET says so, as an error.
        return cleaned(caches["ds"].get(identity.AGENT_NAME) or kube.get(DAEMONSET, identity.AGENT_NAME, namespace))

    # On a watch of the DaemonSet: its status moves as each node's pod reports ready in uninstall mode.
    watch = Watch("ds", DAEMONSET, namespace, {"field_selector": f"metadata.name={identity.AGENT_NAME}"})
    try:
        desired = until(kube, [watch], finished, NODE_CLEANUP_TIMEOUT, "the nodes to clean up")
    except WaitExpired:
        current = kube.get(DAEMONSET, identity.AGENT_NAME, namespace)
        pods = kube.list(r.POD, namespace, label_selector=",".join(f"{k}={v}" for k, v in identity.LABELS.items()))
        observed, desired, _, updated = rollout(current)
        names = unfinished_nodes(current, pods)
        which = f": {', '.join(names)}" if names else ""
        report.warn(f"only {updated if observed else 0}/{desired} node(s) finished cleaning up within "
                    f"{NODE_CLEANUP_TIMEOUT:g}s; not finished{which or ' (no agent pod found)'}; those keep "
                    "the shim and their links")
        return
    report.status(f"daemonset.apps/{identity.AGENT_NAME}", f"cleaned {desired} node(s)")


def purge_nodes(kube: Kube, report: Reporter, dry_run: DryRun) -> None:
    """The kubelet keeps extended resources of a plugin that is gone (kubernetes#52510): remove them."""
    from jsonpointer import escape, unescape

    prefix = validate.RESOURCE_PREFIX + "/"

    def plan(node: dict[str, Any]) -> list[dict[str, Any]]:
        status = node.get("status") or {}
        return [{"op": "remove", "path": f"/status/{part}/{escape(key)}"}
                for part in ("capacity", "allocatable") for key in sorted(status.get(part) or {})
                if key.startswith(prefix)]

    for node in kube.list(NODE):
        name = node["metadata"]["name"]
        ops = plan(node)
        if not ops:
            continue
        keys = sorted({unescape(op["path"].rsplit("/", 1)[1]) for op in ops})
        if dry_run is not DryRun.CLIENT:
            # The kubelet updates node status all the time: re-read and re-plan when it did meanwhile.
            _, changed = guarded_json_patch(kube, NODE, name, None, plan, what=f"node {name}", dry_run=dry_run,
                                            subresource="status", current=node)
            if not changed:
                continue
        report.status(NODE.label(name), f"patched (removed {', '.join(keys)})", dry_run.suffix)
