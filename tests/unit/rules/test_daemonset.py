"""One rule for "the DaemonSet is rolled out" (macvtapctl/daemonset.py): install --wait, status and doctor read the
same verdict, on dicts as the DaemonSet controller writes them."""

from __future__ import annotations

from typing import Any

import pytest

from macvtapctl.rules import daemonset, doctor
from macvtapctl.rules.doctor import cluster
from tests.unit.rules.doctor.helpers import findings_of


def ds(generation: int, **status: Any) -> dict[str, Any]:
    return {"kind": "DaemonSet", "metadata": {"name": "macvtapctl-agent", "namespace": "macvtap",
                                              "generation": generation}, "status": status}


@pytest.mark.parametrize(("obj", "want"), [
    (ds(1, desiredNumberScheduled=3, numberReady=3, updatedNumberScheduled=3, observedGeneration=1), None),
    (ds(1), "0/0 pods ready"),  # no controller has written a status yet
    (ds(1, desiredNumberScheduled=3, numberReady=2, updatedNumberScheduled=3, observedGeneration=1),
     "2/3 pods ready"),
    (ds(2, desiredNumberScheduled=3, numberReady=3, updatedNumberScheduled=3, observedGeneration=1),
     "3/3 pods ready, the new rollout not observed yet"),  # the counts are the previous template's
    (ds(2, desiredNumberScheduled=3, numberReady=3, updatedNumberScheduled=1, observedGeneration=2),
     "3/3 pods ready, 1/3 updated"),  # old pods still serve
])
def test_rolled_out_and_why_not(obj: dict[str, Any], want: str | None) -> None:
    assert daemonset.not_rolled_out(obj) == want
    found = [f for f in findings_of(cluster.agent_health, doctor.Snapshot(agents=[obj])) if f.id == "agent-health"]
    assert [f.cause for f in found] == ([want] if want else [])
