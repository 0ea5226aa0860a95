"""The one reading of the KubeVirt CR's feature gates (kubevirt.gates_of) that `enable`'s planner, `status` and
`doctor` share, on the states where the three used to disagree (v1.0; v1.8 with the injection gate enabled and
disabled at once)."""

from __future__ import annotations

from typing import Any

import pytest

from macvtapctl.errors import PreconditionError
from macvtapctl.rules import doctor, kubevirt
from macvtapctl.rules.doctor import cluster
from tests.unit.rules.doctor.helpers import findings_of


def cr(version: str, enabled: list[str] | None = None, disabled: list[str] | None = None) -> dict[str, Any]:
    dev: dict[str, Any] = {}
    if enabled is not None:
        dev["featureGates"] = enabled
    if disabled is not None:
        dev["disabledFeatureGates"] = disabled
    return {"kind": "KubeVirt", "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
            "spec": {"configuration": {"developerConfiguration": dev,
                                       "network": {"binding": {"macvtap": {"domainAttachmentType": "tap"}}}}},
            "status": {"observedKubeVirtVersion": version, "phase": "Deployed",
                       "conditions": [{"type": "Available", "status": "True"}]}}


BG, IG = kubevirt.BINDING_GATE, kubevirt.INJECTION_GATE
# (version, enabled, disabled) -> (supported, binding gate missing, injection on)
STATES = [
    ("v1.0.0", [], [], (False, False, False)),
    ("v1.4.0", [], [], (True, True, False)),
    ("v1.4.0", [BG], [], (True, False, False)),
    ("v1.4.0", [BG], [BG], (True, True, False)),  # disabled wins
    ("v1.5.0", [BG], [], (True, False, False)),
    ("v1.8.0", [], [], (True, False, False)),  # Beta: off unless enabled
    ("v1.8.0", [IG], [], (True, False, True)),
    ("v1.8.0", [IG], [IG], (True, False, False)),
    ("v1.9.0", [], [], (True, False, True)),  # on by default
    ("v1.9.0", [], [IG], (True, False, False)),
]


@pytest.mark.parametrize(("version", "enabled", "disabled", "want"), STATES)
def test_the_gates_mean_one_thing_and_doctor_says_it(version: str, enabled: list[str], disabled: list[str],
                                                     want: tuple[bool, bool, bool]) -> None:
    kv = cr(version, enabled, disabled)
    parsed = kubevirt.parse_version(version)
    assert parsed is not None
    state = kubevirt.gates_of(kv, parsed)
    assert (state.supported, state.binding_gate_missing, state.injection_on) == want
    ids = {f.id for f in findings_of(cluster.versions, doctor.Snapshot(kubevirts=[kv]))}
    assert ("binding-gate" in ids) == (not want[0] or want[1]), ids
    assert ("external-injection" in ids) == want[2], ids


@pytest.mark.parametrize(("version", "enabled", "disabled", "want"), STATES)
def test_enable_plans_what_the_reading_says(version: str, enabled: list[str], disabled: list[str],
                                            want: tuple[bool, bool, bool]) -> None:
    """After applying enable's plan (where it plans one), the same reading finds nothing missing and, unless
    the injection gate was enabled by hand (enable refuses that), nothing on."""
    kv = cr(version, enabled, disabled)
    parsed = kubevirt.parse_version(version)
    assert parsed is not None
    if not want[0] or BG in disabled or (IG in enabled and IG not in disabled and parsed >= (1, 8, 0)):
        with pytest.raises(PreconditionError):  # unsupported, or a gate the user set that enable will not undo
            kubevirt.plan_enable(kv, parsed)
        return
    after = kubevirt.apply_plan(kv, kubevirt.plan_enable(kv, parsed))
    state = kubevirt.gates_of(after, parsed)
    assert not state.binding_gate_missing and not state.injection_on
