"""Which VMI a virt-launcher pod runs, from the pod's name alone (the agent knows a pod by the CNI ADD's
K8S_POD_NAME, nothing more). KubeVirt names the launcher pod with generateName `virt-launcher-<vmi>-`
(pkg/virt-controller/services/template.go), and the API server appends 5 characters of its own alphabet
(k8s.io/apimachinery util/rand: consonants without vowels, and digits without 0, 1, 3)."""

from __future__ import annotations

import re

PREFIX = "virt-launcher-"
_LAUNCHER = re.compile(rf"^{PREFIX}(?P<vmi>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)-[bcdfghjklmnpqrstvwxz2456789]{{5}}$")


def vmi_of_launcher(pod_name: str) -> str | None:
    """The VMI's name, or None for a pod that is not named as KubeVirt names its launchers."""
    m = _LAUNCHER.match(pod_name)
    return m.group("vmi") if m else None


# KubeVirt labels the launcher pod it creates on a migration's target node with the migration's UID
# (pkg/virt-controller/watch/migration: templatePod.ObjectMeta.Labels[virtv1.MigrationJobLabel]), from creation on.
MIGRATION_JOB_LABEL = "kubevirt.io/migrationJobUID"


def is_migration_target(pod: object) -> bool:
    """Whether a pod object (as the API server returns it) is a migration's target launcher."""
    meta = pod.get("metadata") if isinstance(pod, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return (isinstance(labels, dict) and isinstance(labels.get(MIGRATION_JOB_LABEL), str)
            and bool(labels[MIGRATION_JOB_LABEL]))
