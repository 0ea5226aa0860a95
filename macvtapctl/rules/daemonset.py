"""When a DaemonSet (the agent's, or upstream macvtap-cni's) is rolled out: the one rule `install --wait`, `status`
and `doctor` apply. Pure."""

from __future__ import annotations

from typing import Any


def rollout(ds: dict[str, Any]) -> tuple[bool, int, int, int]:
    """(observed, desired, ready, updated) of a DaemonSet. A rollout the controller has not observed yet still
    shows the previous one's counts, so those mean nothing until `observed`. A status without observedGeneration
    (no controller has written one yet) has no counts either: desired 0 says it is not rolled out."""
    st = ds.get("status") or {}
    desired, ready, updated = (int(st.get(k) or 0) for k in ("desiredNumberScheduled", "numberReady",
                                                                "updatedNumberScheduled"))
    seen = st.get("observedGeneration")
    observed = seen is None or int(seen) >= int((ds.get("metadata") or {}).get("generation") or 1)
    return observed, desired, ready, updated


def not_rolled_out(ds: dict[str, Any]) -> str | None:
    """Why the DaemonSet is not rolled out (None: it is): every scheduled pod ready, of the current template, as
    the controller has observed."""
    observed, desired, ready, updated = rollout(ds)
    if observed and desired > 0 and ready == desired and updated == desired:
        return None
    why = f"{ready}/{desired} pods ready"
    if not observed:
        why += ", the new rollout not observed yet"
    elif updated < desired:
        why += f", {updated}/{desired} updated"
    return why


IMAGE_PULL_FAILURES = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")


def pull_failure(pod: dict[str, Any], status: dict[str, Any]) -> str | None:
    """'pod P on node N cannot pull IMAGE (ImagePullBackOff; ...)' when this container status says its image cannot
    be pulled (the rule install --wait, status and doctor share)."""
    reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
    if reason not in IMAGE_PULL_FAILURES:
        return None
    return (f"pod {pod['metadata']['name']} on node {(pod.get('spec') or {}).get('nodeName')} cannot pull "
            f"{status.get('image')} ({reason}; is the image published? see docs/install.md: make image, push, "
            "install --image)")


def pull_failures(pods: list[dict[str, Any]]) -> list[str]:
    """pull_failure of every container of these pods."""
    return [m for pod in pods for cs in (pod.get("status") or {}).get("containerStatuses") or []
            if (m := pull_failure(pod, cs))]


def unfinished_nodes(ds: dict[str, Any], pods: list[dict[str, Any]]) -> list[str]:
    """The nodes whose pod of this DaemonSet is not ready on its current template (the controller labels each pod
    with the pod-template-generation it was made from), sorted."""
    generation = str((ds.get("metadata") or {}).get("generation") or "")
    out = []
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (pod.get("status") or {}).get("conditions") or [])
        if not ready or labels.get("pod-template-generation") != generation:
            out.append(str((pod.get("spec") or {}).get("nodeName") or pod["metadata"]["name"]))
    return sorted(set(out))
