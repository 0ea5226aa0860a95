"""Finding and writing the device-plugin ConfigMap, and who else cares about it (CNAO, upstream DaemonSet)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from macvtapctl import identity
from macvtapctl.dig import dig
from macvtapctl.errors import ForbiddenError, Hint, MacvtapctlError, PreconditionError, UsageError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.errors import AlreadyExistsError
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import CONFIGMAP, DAEMONSET, NAMESPACE, NETWORK_ADDONS_CONFIG
from macvtapctl.kube.retry import retry_on_conflict
from macvtapctl.rules import device_plugins, dpconfig


@dataclass
class Target:
    namespace: str
    name: str
    object: dict[str, Any] | None  # None: does not exist yet

    @property
    def label(self) -> str:
        return CONFIGMAP.label(self.name)

    def config(self) -> dpconfig.Config:
        if self.object is None:
            return dpconfig.Config()
        data = self.object.get("data") or {}
        if dpconfig.CONFIG_KEY not in data:
            return dpconfig.Config()
        return dpconfig.parse(data[dpconfig.CONFIG_KEY], where=f"{self.label} {dpconfig.CONFIG_KEY}")


def locate(kube: Kube, dp_namespace: str | None, name: str = dpconfig.CONFIGMAP_NAME) -> Target:
    """--dp-namespace, else the one namespace holding the ConfigMap, else the agent's default namespace."""
    if dp_namespace:
        target = Target(dp_namespace, name, kube.get_or_none(CONFIGMAP, name, dp_namespace))
    else:
        found = kube.list(CONFIGMAP, field_selector=f"metadata.name={name}")
        if len(found) > 1:
            where = ", ".join(sorted(c["metadata"]["namespace"] for c in found))
            raise UsageError(f"ConfigMap {name} exists in several namespaces ({where})", hint=Hint.DP_NAMESPACE)
        if found:
            target = Target(found[0]["metadata"]["namespace"], name, found[0])
        else:
            target = Target(identity.DEFAULT_NAMESPACE, name, None)
    return _follow_cnao(kube, target)


def _follow_cnao(kube: Kube, target: Target) -> Target:
    """CNAO reconciles the ConfigMap it owns back to its own content; use the user-owned one it points to."""
    owners = dig(target.object, "metadata", "ownerReferences") or []
    nac_ref = next((o for o in owners if o.get("kind") == "NetworkAddonsConfig"), None)
    if nac_ref is None:
        return target
    nac = kube.get_or_none(NETWORK_ADDONS_CONFIG, str(nac_ref.get("name", "cluster")))
    custom = dig(nac, "spec", "macvtap", "devicePluginConfig")
    if custom and custom != target.name:
        return Target(target.namespace, str(custom), kube.get_or_none(CONFIGMAP, str(custom), target.namespace))
    raise PreconditionError(
        f'ConfigMap {target.namespace}/{target.name} is owned by NetworkAddonsConfig "{nac_ref.get("name")}" '
        "(CNAO), which reverts edits to it. Create your own ConfigMap in that namespace (e.g. "
        f"macvtap-deviceplugin-config-custom), point CNAO at it with: kubectl patch networkaddonsconfig "
        f"{nac_ref.get('name')} --type merge -p "
        "'{\"spec\":{\"macvtap\":{\"devicePluginConfig\":\"macvtap-deviceplugin-config-custom\"}}}', "
        "then rerun this command (macvtapctl follows devicePluginConfig)")


def current_config(kube: Kube) -> dpconfig.Config | None:
    """The current DP config, or None when it cannot be read (missing, malformed, forbidden, CNAO-owned)."""

    try:
        target = locate(kube, None)
        return target.config() if target.object is not None else None
    except MacvtapctlError:
        return None


@dataclass
class Update:
    """What `update` did: the ConfigMap it found, the objects written (a created namespace first), and
    created|configured|unchanged for the ConfigMap."""

    target: Target
    objects: list[dict[str, Any]]
    operation: str
    namespace_created: bool = False
    unvalidated: bool = False  # a server dry run whose namespace does not exist: the ConfigMap was not sent


Mutation = Callable[[Target, dpconfig.Config], "dpconfig.Config | None"]


def update(kube: Kube, mutate: Mutation, dry_run: DryRun, *, dp_namespace: str | None = None,
           on_read: Callable[[Target, dpconfig.Config], None] | None = None) -> Update:
    """The one read-modify-write door of DP_MACVTAP_CONF: locate and read the ConfigMap, let `mutate` (pure; None
    = nothing to change) plan the new document, write it guarded by resourceVersion — or create it, with its
    namespace — and on a stale read (409) or a create race (AlreadyExists) start again from the read.
    `on_read` sees the first document read (for its warnings)."""

    first = [True]

    def attempt() -> Update:
        target = locate(kube, dp_namespace)
        cfg = target.config()
        if first[0] and on_read is not None:
            on_read(target, cfg)
        first[0] = False
        new = mutate(target, cfg)
        if new is None:
            return Update(target, [target.object] if target.object is not None else [], "unchanged")
        objects: list[dict[str, Any]] = []
        ns_obj = ensure_namespace(kube, target.namespace, dry_run) if target.object is None else None
        if ns_obj is not None:
            objects.append(ns_obj)
        # Nothing can be validated inside a namespace that a server dry run did not really create.
        unvalidated = ns_obj is not None and dry_run is DryRun.SERVER
        obj, operation = write(kube, target, new, DryRun.CLIENT if unvalidated else dry_run)
        objects.append(obj)
        return Update(target, objects, operation, namespace_created=ns_obj is not None, unvalidated=unvalidated)

    return retry_on_conflict(attempt, what="the device-plugin ConfigMap")


def write(kube: Kube, target: Target, cfg: dpconfig.Config, dry_run: DryRun) -> tuple[dict[str, Any], str]:
    """Create the ConfigMap or merge-patch its key, guarded by resourceVersion. Returns (object, operation)."""
    body = cfg.render()
    if target.object is not None:
        if dry_run is DryRun.CLIENT:
            obj = {**target.object, "data": {**(target.object.get("data") or {}), dpconfig.CONFIG_KEY: body}}
            return obj, "configured"
        rv = target.object["metadata"]["resourceVersion"]
        patch = {"metadata": {"resourceVersion": rv}, "data": {dpconfig.CONFIG_KEY: body}}
        return kube.merge_patch(CONFIGMAP, target.name, patch, target.namespace, dry_run=dry_run), "configured"
    obj = new_configmap(target.namespace, target.name, body)
    if dry_run is DryRun.CLIENT:
        return obj, "created"
    return kube.create(CONFIGMAP, obj, target.namespace, dry_run=dry_run), "created"


def new_configmap(namespace: str, name: str, body: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/part-of": "macvtapctl"}},
            "data": {dpconfig.CONFIG_KEY: body}}


def ensure_namespace(kube: Kube, namespace: str, dry_run: DryRun) -> dict[str, Any] | None:
    """Create the namespace when missing; returns it when it was (or would be) created."""
    if kube.get_or_none(NAMESPACE, namespace) is not None:
        return None
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    if dry_run is DryRun.CLIENT:
        return obj
    try:
        return kube.create(NAMESPACE, obj, dry_run=dry_run)
    except AlreadyExistsError:  # created by a concurrent writer since we looked: it exists, which is all we need
        return None


def upstream_daemonsets(kube: Kube, namespace: str, configmap: str) -> list[dict[str, Any]]:
    """macvtap-cni DaemonSets that read this ConfigMap through env/envFrom: they read it only at start."""
    try:
        dss = kube.list(DAEMONSET, namespace)
    except (ForbiddenError, PreconditionError):
        return []
    return [ds for p, ds in device_plugins.find(dss) if p.kind == device_plugins.UPSTREAM and p.configmap == configmap]


def restart_daemonset(kube: Kube, ds: dict[str, Any], dry_run: DryRun) -> None:
    """`kubectl rollout restart`: bump the pod template's restartedAt annotation."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
    if dry_run is not DryRun.CLIENT:
        kube.merge_patch(DAEMONSET, ds["metadata"]["name"], patch, ds["metadata"]["namespace"], dry_run=dry_run)
