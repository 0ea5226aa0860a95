"""The one "did this write change anything" rule (macvtapctl/applied.py) that install and vm create --apply use."""

from __future__ import annotations

import copy

from macvtapctl.rules import applied

VM = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
      "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "resourceVersion": "1",
                   "generation": 1, "managedFields": [{"manager": "macvtapctl"}]},
      "spec": {"runStrategy": "Always"}, "status": {"ready": False}}


def test_what_the_server_keeps_is_not_a_change() -> None:
    after = copy.deepcopy(VM)
    after["metadata"].update(resourceVersion="7", generation=2, managedFields=[])
    after["status"] = {"ready": True}
    assert applied.unchanged(VM, after)


def test_spec_labels_and_annotations_are() -> None:
    for path, value in ((("spec", "runStrategy"), "Halted"), (("metadata", "labels"), {"app": "db"}),
                        (("metadata", "annotations"), {"note": "x"})):
        after = copy.deepcopy(VM)
        after[path[0]][path[1]] = value
        assert not applied.unchanged(VM, after), path


def test_nothing_before_is_a_change() -> None:
    assert not applied.unchanged(None, VM)
