"""Planning changes to the KubeVirt CR: pure functions on dicts (no I/O).

Facts (docs/cluster-setup.md, "enable / disable"): network binding plugins exist since v1.1; the
NetworkBindingPlugins gate must be listed in v1.1-v1.4 and is GA (always on) from v1.5; the gate
ExternalNetResourceInjection exists from v1.8 (off) and is on by default from v1.9, when it stops KubeVirt from
injecting the macvtap device request into virt-launcher pods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from macvtapctl.dig import dig
from macvtapctl.errors import PreconditionError, UsageError
from macvtapctl.jsonmerge import merge_patch

BINDING_GATE = "NetworkBindingPlugins"
INJECTION_GATE = "ExternalNetResourceInjection"
DEFAULT_BINDING = "macvtap"
TAP = "tap"

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?\Z")


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    if not text:
        return None
    m = _VERSION.match(text.strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def require_version(observed: str | None, override: str | None) -> tuple[int, int, int]:
    """The version to plan for: --kubevirt-version wins; otherwise the CR's observed version, which must exist."""
    if override is not None:
        v = parse_version(override)
        if v is None:
            raise UsageError(f'invalid --kubevirt-version "{override}": expected a version like v1.5.0')
        return v
    v = parse_version(observed)
    if v is None:
        shown = f'"{observed}"' if observed else "no status.observedKubeVirtVersion"
        raise PreconditionError(
            f"cannot tell which KubeVirt version is running ({shown} on the KubeVirt CR; is KubeVirt still "
            "deploying?); pass --kubevirt-version vX.Y.Z to plan for a specific version")
    return v


def fmt_version(v: tuple[int, int, int]) -> str:
    return f"v{v[0]}.{v[1]}.{v[2]}"


@dataclass
class Plan:
    """What to change, why, and the object as it will look afterwards."""

    patch: dict[str, Any] = field(default_factory=dict)  # merge patch; empty = unchanged
    notes: list[str] = field(default_factory=list)  # decisions, printed on stderr
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.patch)


def _gates(kv: dict[str, Any], key: str) -> list[str]:
    value = dig(kv, "spec", "configuration", "developerConfiguration", key)
    return [str(g) for g in value] if isinstance(value, list) else []


@dataclass(frozen=True)
class Gates:
    """What the KubeVirt CR's feature gates mean for the macvtap binding on a version: the one reading the
    planner (`enable`), `status` and `doctor` share. A gate both enabled and disabled is disabled (KubeVirt's
    disabledFeatureGates win)."""

    supported: bool  # v1.1+: network binding plugins exist
    binding_gate_missing: bool  # v1.1 <= v < v1.5: NetworkBindingPlugins must be enabled, and is not
    binding_gate_redundant: bool  # v1.5+: GA, listed anyway
    injection_on: bool  # ExternalNetResourceInjection in effect: KubeVirt no longer requests the device
    injection_explicit: bool  # ... because featureGates lists it (not by the version's default)


def gates_of(kv: dict[str, Any], version: tuple[int, int, int]) -> Gates:
    enabled, disabled = _gates(kv, "featureGates"), _gates(kv, "disabledFeatureGates")
    binding_on = BINDING_GATE in enabled and BINDING_GATE not in disabled
    explicit = INJECTION_GATE in enabled and INJECTION_GATE not in disabled
    if version < (1, 8, 0):  # the gate does not exist before v1.8
        injection = False
    elif version < (1, 9, 0):  # Beta, off unless enabled
        injection = explicit
    elif version < (1, 10, 0):  # on by default from v1.9
        injection = INJECTION_GATE not in disabled
    else:  # GA in v1.10 and KubeVirt's own injection code is gone (kubevirt#18497): disabling it does nothing
        injection = True
    return Gates(supported=version >= (1, 1, 0), binding_gate_missing=(1, 1, 0) <= version < (1, 5, 0)
                 and not binding_on, binding_gate_redundant=version >= (1, 5, 0) and BINDING_GATE in enabled,
                 injection_on=injection, injection_explicit=explicit and version >= (1, 8, 0))


def is_macvtap_binding(binding: Any) -> bool:
    """A registered network binding is the macvtap one when KubeVirt attaches the domain by tap (the one rule for
    enable, vm check, status and doctor)."""
    return isinstance(binding, dict) and binding.get("domainAttachmentType") == TAP


def macvtap_bindings(bindings: dict[str, Any]) -> list[str]:
    """The names of the macvtap bindings among registered ones, sorted."""
    return sorted(n for n, b in bindings.items() if is_macvtap_binding(b))


def binding_of(kv: dict[str, Any], name: str) -> dict[str, Any] | None:
    value = dig(kv, "spec", "configuration", "network", "binding", name)
    return value if isinstance(value, dict) else None


def plan_enable(kv: dict[str, Any], version: tuple[int, int, int], *, binding_name: str = DEFAULT_BINDING,
                external_injector: bool = False, force: bool = False) -> Plan:
    """Plan registering the macvtap binding (and the gates this version needs) on a KubeVirt CR."""
    plan = Plan()
    v = fmt_version(version)
    if version < (1, 1, 0):
        raise PreconditionError(
            f"KubeVirt {v} is not supported: the macvtap network binding plugin needs KubeVirt v1.1.0 or newer "
            "(the core `macvtap: {}` binding of older releases was removed in v1.3)")
    dev: dict[str, Any] = {}
    gates = _gates(kv, "featureGates")
    disabled = _gates(kv, "disabledFeatureGates")
    state = gates_of(kv, version)

    if version < (1, 5, 0):
        if BINDING_GATE in disabled:
            raise PreconditionError(
                f"feature gate {BINDING_GATE} is listed in disabledFeatureGates; remove it there first")
        if not state.binding_gate_missing:
            plan.notes.append(f"feature gate {BINDING_GATE} already enabled (required on {v})")
        else:
            dev["featureGates"] = [*gates, BINDING_GATE]
            plan.notes.append(f"adding feature gate {BINDING_GATE}: KubeVirt {v} requires it for binding plugins")
    else:
        plan.notes.append(f"feature gate {BINDING_GATE} is GA since v1.5.0: nothing to add on {v}")
        if state.binding_gate_redundant:
            plan.warnings.append(
                f"feature gate {BINDING_GATE} is listed in featureGates but is GA since v1.5.0: it is redundant "
                "and can be removed")

    if version >= (1, 8, 0):  # the gate exists from v1.8 (Beta, off); on by default from v1.9
        _plan_injection_gate(plan, dev, state, disabled, version, external_injector)

    existing = binding_of(kv, binding_name)
    binding_patch: dict[str, Any] | None = None
    if existing is None:
        binding_patch = {"domainAttachmentType": TAP}
        plan.notes.append(f"registering network binding {binding_name!r} with domainAttachmentType: tap")
    elif existing.get("domainAttachmentType") == TAP and not existing.get("sidecarImage") \
            and not existing.get("networkAttachmentDefinition"):
        plan.notes.append(f"network binding {binding_name!r} already registered with domainAttachmentType: tap")
    elif force:
        # Replace the whole binding: a leftover sidecarImage would turn it into a different plugin.
        binding_patch = dict.fromkeys(existing) | {"domainAttachmentType": TAP}
        plan.warnings.append(f"replacing network binding {binding_name!r} ({existing}) (--force)")
    else:
        raise PreconditionError(
            f"network binding {binding_name!r} is already registered as {existing}, not as a macvtap "
            "(domainAttachmentType: tap) binding; choose another --binding-name or pass --force to replace it")

    spec_conf: dict[str, Any] = {}
    if dev:
        spec_conf["developerConfiguration"] = dev
    if binding_patch is not None:
        spec_conf["network"] = {"binding": {binding_name: binding_patch}}
    if spec_conf:
        plan.patch = {"spec": {"configuration": spec_conf}}
    return plan


def plan_disable(kv: dict[str, Any], *, binding_name: str = DEFAULT_BINDING) -> Plan:
    """Plan unregistering the binding. Gates stay: other bindings may need them."""
    plan = Plan()
    if binding_of(kv, binding_name) is None:
        plan.notes.append(f"network binding {binding_name!r} is not registered")
        return plan
    plan.patch = {"spec": {"configuration": {"network": {"binding": {binding_name: None}}}}}
    plan.notes.append(f"unregistering network binding {binding_name!r}")
    return plan


def _plan_injection_gate(plan: Plan, dev: dict[str, Any], state: Gates, disabled: list[str],
                         version: tuple[int, int, int], external_injector: bool) -> None:
    v = fmt_version(version)
    if version >= (1, 10, 0):
        if INJECTION_GATE in disabled:
            plan.warnings.append(f"{INJECTION_GATE} is listed in disabledFeatureGates, which does nothing on {v}: "
                                 "the gate is GA and KubeVirt's own injection is gone")
        if not external_injector:
            raise PreconditionError(
                f"KubeVirt {v} no longer adds the macvtap device request to VM pods ({INJECTION_GATE} is GA and its "
                "fallback removed): without an injector every macvtap VM starts without its device and its CNI "
                "ADD fails. Deploy network-resources-injector (macvtapctl install --injector, or "
                "k8snetworkplumbingwg/network-resources-injector's own manifests) and rerun with "
                "--external-injector, or run a KubeVirt before v1.10")
        plan.notes.append(f"{INJECTION_GATE} is GA on {v} (--external-injector): network-resources-injector "
                          "must add the macvtap resource request to VM pods")
        return
    if external_injector:
        plan.notes.append(
            f"leaving {INJECTION_GATE} on (--external-injector): network-resources-injector must add the "
            "macvtap resource request to VM pods")
    elif state.injection_explicit:
        raise PreconditionError(
            f"feature gate {INJECTION_GATE} is explicitly enabled in featureGates, so KubeVirt {v} will not "
            "request the macvtap device for VM pods: deploy network-resources-injector and rerun with "
            f"--external-injector, or remove {INJECTION_GATE} from featureGates")
    elif INJECTION_GATE in disabled:
        plan.notes.append(f"{INJECTION_GATE} already disabled: KubeVirt injects the macvtap resource request")
    elif not state.injection_on:
        plan.notes.append(f"{INJECTION_GATE} is off by default on {v}: KubeVirt injects the macvtap resource "
                          "request")
    else:
        dev["disabledFeatureGates"] = [*disabled, INJECTION_GATE]
        plan.notes.append(
            f"disabling {INJECTION_GATE}: on {v} it is on by default and KubeVirt would no longer add the "
            "macvtap resource request to VM pods (use --external-injector if network-resources-injector "
            "is deployed)")


def guarded(patch: dict[str, Any], resource_version: str) -> dict[str, Any]:
    """The patch plus metadata.resourceVersion, so the server refuses it (409) if the object changed."""
    return merge_patch(patch, {"metadata": {"resourceVersion": resource_version}})  # type: ignore[no-any-return]


def apply_plan(kv: dict[str, Any], plan: Plan) -> dict[str, Any]:
    result: dict[str, Any] = merge_patch(kv, plan.patch)
    return result


# --- HyperConverged (HCO) ------------------------------------------------------------------------------
# HCO owns the KubeVirt CR and reverts direct edits. The supported ways: bindings in
# HyperConverged.spec.networkBinding; anything else (feature gates) through the
# kubevirt.kubevirt.io/jsonpatch annotation, a JSON array of RFC 6902 operations HCO applies to the CR.

HCO_JSONPATCH_ANNOTATION = "kubevirt.kubevirt.io/jsonpatch"
_DEV_PATH = "/spec/configuration/developerConfiguration"


def hco_annotation_ops(hco: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    raw = dig(hco, "metadata", "annotations", HCO_JSONPATCH_ANNOTATION)
    if not raw:
        return []
    try:
        ops = json.loads(raw)
    except ValueError as exc:
        raise PreconditionError(
            f"the {HCO_JSONPATCH_ANNOTATION} annotation on the HyperConverged CR is not valid JSON ({exc}); "
            "fix it before macvtapctl adds to it") from None
    if not isinstance(ops, list):
        raise PreconditionError(f"the {HCO_JSONPATCH_ANNOTATION} annotation is not a JSON array")
    return ops


HCO_V1_ONLY_ANNOTATION = "hco.kubevirt.io/v1-only-fields"  # how hco.kubevirt.io/v1beta1 carries v1-only fields
HCO_INJECTOR_FIELD = "spec.deployment.deployNetworkResourcesInjector"  # hco.kubevirt.io/v1, default true


def hco_deploys_injector(hco: dict[str, Any]) -> bool | None:
    """HyperConverged's own network-resources-injector switch (HCO's main after v1.18.1, read at 03da3cf: api/v1
    hyperconverged_types.go, docs/cluster-configuration.md): the v1 field, or, read as v1beta1, the same field in
    the v1-only-fields annotation. None when unset (HCO's default is true, but older HCO has no such operand)."""
    value = dig(hco, "spec", "deployment", "deployNetworkResourcesInjector")
    if value is None:
        import json

        raw = dig(hco, "metadata", "annotations", HCO_V1_ONLY_ANNOTATION)
        try:
            fields = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            fields = {}
        value = fields.get("deployNetworkResourcesInjector") if isinstance(fields, dict) else None
    return value if isinstance(value, bool) else None


def _hco_injector_refusal(hco: dict[str, Any], version: tuple[int, int, int]) -> PreconditionError:
    """enable on KubeVirt >= v1.10 under HyperConverged without --external-injector: HCO's own switch named. Never
    written by us: HCO documents `false` for clusters where another injector runs, so turning it on could put two
    injectors on one pod."""
    v = fmt_version(version)
    head = f"KubeVirt {v} no longer adds the macvtap device request to VM pods: an injector must"
    if hco_deploys_injector(hco) is False:
        return PreconditionError(
            f"{head}, and this HyperConverged has {HCO_INJECTOR_FIELD}: false. If no other injector runs, set it "
            "to true (hco.kubevirt.io/v1) or run macvtapctl install --injector; then rerun with --external-injector")
    return PreconditionError(
        f"{head}. HyperConverged deploys network-resources-injector while {HCO_INJECTOR_FIELD} is not false "
        "(HCO after v1.18.1; its webhook is mutatingwebhookconfiguration/virt-network-resources-injector-config); "
        "with it, or after macvtapctl install --injector, rerun with --external-injector")


def plan_enable_hco(hco: dict[str, Any], kv: dict[str, Any], version: tuple[int, int, int], *,
                    binding_name: str = DEFAULT_BINDING, external_injector: bool = False,
                    force: bool = False) -> Plan:
    """The same decisions as plan_enable, expressed as a merge patch of the HyperConverged CR."""
    import json

    hco_binding = dig(hco, "spec", "networkBinding", binding_name)
    view = merge_patch(kv, {"spec": {"configuration": {"network": {"binding": {
        binding_name: hco_binding if isinstance(hco_binding, dict) else None}}}}})
    if version >= (1, 10, 0) and not external_injector:
        raise _hco_injector_refusal(hco, version)
    kv_plan = plan_enable(view, version, binding_name=binding_name, external_injector=external_injector,
                          force=force)
    plan = Plan(notes=[*kv_plan.notes, "the KubeVirt CR is managed by HyperConverged: changing the HyperConverged "
                       "CR instead (HCO reverts direct edits)"], warnings=kv_plan.warnings)
    conf = dig(kv_plan.patch, "spec", "configuration") or {}
    patch: dict[str, Any] = {}
    if "network" in conf:
        patch["spec"] = {"networkBinding": {binding_name: conf["network"]["binding"][binding_name]}}
    dev = conf.get("developerConfiguration") or {}
    ops = hco_annotation_ops(hco)
    new_ops: list[dict[str, Any]] = []
    for key in ("featureGates", "disabledFeatureGates"):
        if key not in dev:
            continue
        before = _gates(kv, key)
        for gate in dev[key]:
            if gate in before:
                continue
            if dig(kv, "spec", "configuration", "developerConfiguration", key) is None and not any(
                    o.get("path") == f"{_DEV_PATH}/{key}" for o in new_ops):
                op: dict[str, Any] = {"op": "add", "path": f"{_DEV_PATH}/{key}", "value": [gate]}
            else:
                op = {"op": "add", "path": f"{_DEV_PATH}/{key}/-", "value": gate}
            if op not in ops:
                new_ops.append(op)
    if new_ops:
        patch["metadata"] = {"annotations": {HCO_JSONPATCH_ANNOTATION: json.dumps([*ops, *new_ops])}}
    plan.patch = patch
    return plan


def observed_version_of(kv: dict[str, Any]) -> str | None:
    value = dig(kv, "status", "observedKubeVirtVersion")
    return str(value) if value else None


DEPLOYED = "Deployed"


def deployment_problem(kv: dict[str, Any]) -> str | None:
    """What virt-operator says of its own deployment, when it is not done: phase Deploying, Deleting, ...; its
    conditions' messages; a target version it has not reached. None once it reports Deployed (or when no operator
    writes status, as on a cluster whose KubeVirt CR was written by hand)."""
    status = dig(kv, "status")
    if not isinstance(status, dict) or not status.get("phase"):
        return None
    phase = str(status["phase"])
    target, observed = status.get("targetKubeVirtVersion"), status.get("observedKubeVirtVersion")
    if phase == DEPLOYED and (not target or target == observed):
        return None
    conds = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    degraded = [str(c.get("message") or c.get("reason")) for c in conds
                if c.get("type") == "Degraded" and c.get("status") == "True"]
    why = f": {degraded[0]}" if degraded else ""
    if phase == DEPLOYED:
        return f"KubeVirt is deploying {target} (still at {observed or 'no version'}){why}"
    return f"KubeVirt is {phase}, not {DEPLOYED} (virt-operator has not finished){why}"

