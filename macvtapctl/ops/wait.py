"""The readiness wait install --wait, expose --wait and --take-over share: a device plugin's DaemonSet rolled out
and its nodes serving (rules/waits.readiness_of), followed with kube/follow.until — evaluated on every change,
never polled. Here, not in one verb's module, so no use-case imports another's to wait."""

from __future__ import annotations

import time
from typing import Protocol

from macvtapctl.errors import TimeoutExceeded
from macvtapctl.kube.client import Kube
from macvtapctl.kube.follow import Caches, WaitExpired, Watch, until
from macvtapctl.kube.resources import DAEMONSET, NODE, POD
from macvtapctl.ops import Reporter
from macvtapctl.rules.waits import Goal, Readiness, readiness_of, selector_of


class NodeProgress(Protocol):
    """A display of nodes ready / total (the CLI's bar on a terminal)."""

    def update(self, done: int, total: int) -> None: ...

    def close(self) -> None: ...


def wait_for_goal(kube: Kube, report: Reporter, goal: Goal, limit: float,
                  progress: NodeProgress | None = None) -> None:
    """Until readiness_of() holds, on watches of the DaemonSet, its pods and the nodes. Summary lines when it
    changes, and `progress` with the nodes advertising / scheduled; a timeout names what lags."""

    ds0 = kube.get_or_none(DAEMONSET, goal.daemonset, goal.namespace) or {}
    pod_selector = selector_of(ds0)
    watches = [Watch("ds", DAEMONSET, goal.namespace, {"field_selector": f"metadata.name={goal.daemonset}"}),
               Watch("nodes", NODE, None)]
    if pod_selector:  # no selector: no pods to read (and a DaemonSet that is not ours)
        watches.append(Watch("pods", POD, goal.namespace, {"label_selector": pod_selector}))
    lagging = ["the first reads of the DaemonSet, its pods and the nodes did not finish"]
    last, said_at = "", 0.0

    def ready(caches: Caches) -> Readiness | None:
        nonlocal lagging, last, said_at
        r = readiness_of(next(iter(caches["ds"].values()), {}), list(caches.get("pods", {}).values()),
                         list(caches["nodes"].values()), goal.wanted, goal.namespace, gone=goal.gone,
                         name=goal.daemonset)
        if progress is not None:
            progress.update(r.advertising, r.scheduled)
        # A line per change, at most one a second (500 nodes would be 500 lines in a CI log); the last state always.
        if r.summary != last and (r.ok or time.monotonic() - said_at >= 1.0):
            report.info(f"waiting: {r.summary}")
            last, said_at = r.summary, time.monotonic()
        lagging = r.lagging
        return r if r.ok else None

    try:
        until(kube, watches, ready, limit, goal.what)
        report.info(goal.done)
    except WaitExpired as exc:
        raise TimeoutExceeded(f"{exc.message}; lagging: {'; '.join(lagging)}") from None
    finally:
        if progress is not None:
            progress.close()

