"""rules/launcher.py: a migration's target launcher by KubeVirt's own label, read from the pod as the API server
returns it."""

from __future__ import annotations

import pytest

from macvtapctl.rules.launcher import MIGRATION_JOB_LABEL, is_migration_target


@pytest.mark.parametrize(("pod", "target"), [
    ({"metadata": {"labels": {MIGRATION_JOB_LABEL: "6f2c0c1e-3f0b-4d55-9a43-0d6f0e1f2a3b"}}}, True),
    ({"metadata": {"labels": {"kubevirt.io/created-by": "uid", "kubevirt.io": "virt-launcher"}}}, False),
    ({"metadata": {"labels": {MIGRATION_JOB_LABEL: ""}}}, False),
    ({"metadata": {"labels": {MIGRATION_JOB_LABEL: 7}}}, False),
    ({"metadata": {}}, False),
    ({"metadata": {"labels": None}}, False),
    ({"kind": "Status", "status": "Failure"}, False),
    ([], False),
    (None, False),
])
def test_a_target_launcher_carries_the_migrations_uid(pod: object, target: bool) -> None:
    assert is_migration_target(pod) is target
