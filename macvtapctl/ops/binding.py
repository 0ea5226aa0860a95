"""Register or unregister the macvtap network binding in the KubeVirt CR (or through HyperConverged)."""

from __future__ import annotations

from typing import Any

from macvtapctl import kubevirt
from macvtapctl.dig import dig
from macvtapctl.errors import PreconditionError
from macvtapctl.kube.client import Kube
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import Resource
from macvtapctl.ops import Reporter


def enable(kube: Kube, report: Reporter, mode: DryRun, *, binding_name: str = kubevirt.DEFAULT_BINDING,
           external_injector: bool = False, kubevirt_version: str | None = None,
           force: bool = False) -> dict[str, Any]:
    """Plan by the running version, report the decisions once, write once (re-planned on conflict)."""
    from macvtapctl.kube.kubevirt_cr import get_hco, hco_owner, the_kubevirt
    from macvtapctl.kube.resources import HYPERCONVERGED, KUBEVIRT
    from macvtapctl.kube.retry import retry_on_conflict

    reported = False

    def attempt() -> dict[str, Any]:
        nonlocal reported
        kv = the_kubevirt(kube)
        ns = kv["metadata"]["namespace"]
        version = kubevirt.require_version(kubevirt.observed_version_of(kv), kubevirt_version)
        owner = hco_owner(kv)
        if owner is not None:
            target_res, target = HYPERCONVERGED, get_hco(kube, owner, ns)
            plan = kubevirt.plan_enable_hco(target, kv, version, binding_name=binding_name,
                                            external_injector=external_injector, force=force)
        else:
            target_res, target = KUBEVIRT, kv
            plan = kubevirt.plan_enable(kv, version, binding_name=binding_name,
                                        external_injector=external_injector, force=force)
        if not reported:
            for note in plan.notes:
                report.info(note)
            for warning in plan.warnings:
                report.warn(warning)
            reported = True
        return _write(kube, report, mode, target_res, target, plan)

    return retry_on_conflict(attempt, what="the KubeVirt CR")


def disable(kube: Kube, report: Reporter, mode: DryRun, *, binding_name: str = kubevirt.DEFAULT_BINDING,
            force: bool = False) -> dict[str, Any]:
    """Unregister the binding; refused while VMs use it unless `force`. Gates stay (others may need them)."""
    from macvtapctl.kube.kubevirt_cr import get_hco, hco_owner, the_kubevirt
    from macvtapctl.kube.resources import HYPERCONVERGED, KUBEVIRT
    from macvtapctl.kube.retry import retry_on_conflict
    from macvtapctl.kube.vms import vms_using_binding

    users = vms_using_binding(kube, binding_name)
    if users and not force:
        shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
        raise PreconditionError(f"network binding {binding_name!r} is used by {len(users)} VM(s): {shown}; "
                                "delete or change them first, or pass --force")

    def attempt() -> dict[str, Any]:
        kv = the_kubevirt(kube)
        owner = hco_owner(kv)
        if owner is None:
            return _write(kube, report, mode, KUBEVIRT, kv, kubevirt.plan_disable(kv, binding_name=binding_name))
        hco = get_hco(kube, owner, kv["metadata"]["namespace"])
        plan = kubevirt.Plan()
        if dig(hco, "spec", "networkBinding", binding_name) is not None:
            plan.patch = {"spec": {"networkBinding": {binding_name: None}}}
        return _write(kube, report, mode, HYPERCONVERGED, hco, plan)

    return retry_on_conflict(attempt, what="the KubeVirt CR")


def _write(kube: Kube, report: Reporter, mode: DryRun, res: Resource, obj: dict[str, Any],
           plan: kubevirt.Plan) -> dict[str, Any]:
    name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
    label = res.label(name)
    if not plan.changed:
        report.status(label, "unchanged", mode.suffix)
        return obj
    if mode is DryRun.CLIENT:
        report.status(label, "configured", mode.suffix)
        return kubevirt.apply_plan(obj, plan)
    rv = obj["metadata"]["resourceVersion"]
    written: dict[str, Any] = kube.merge_patch(res, name, kubevirt.guarded(plan.patch, rv), ns, dry_run=mode)
    report.status(label, "configured", mode.suffix)
    return written
