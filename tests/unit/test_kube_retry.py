"""The guarded JSON-patch door: a failed resourceVersion `test` is retried, a real validation error is not."""

from __future__ import annotations

from typing import Any

import pytest

from macvtapctl.errors import ConflictError, InvalidObjectError
from macvtapctl.kube.options import DryRun
from macvtapctl.kube.resources import VIRTUAL_MACHINE
from macvtapctl.kube.retry import guarded_json_patch


class FakeKube:
    """Objects by name; json_patch fails with the given 422 while `failures` lasts."""

    def __init__(self, rvs: list[str], failures: int, message: str) -> None:
        self.rvs, self.failures, self.message = rvs, failures, message
        self.patches: list[list[dict[str, Any]]] = []
        self.reads = 0

    def _obj(self) -> dict[str, Any]:
        rv = self.rvs[min(self.reads, len(self.rvs) - 1)]
        return {"metadata": {"name": "test-vm", "resourceVersion": rv}}

    def get(self, *args: Any, **kw: Any) -> dict[str, Any]:
        obj = self._obj()
        self.reads += 1
        return obj

    def get_or_none(self, *args: Any, **kw: Any) -> dict[str, Any]:
        return self.get()

    def json_patch(self, res: Any, name: str, ops: list[dict[str, Any]], ns: Any, **kw: Any) -> dict[str, Any]:
        self.patches.append(ops)
        if self.failures:
            self.failures -= 1
            raise InvalidObjectError(self.message)
        return {"patched": ops}


def plan(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"op": "add", "path": "/spec/x", "value": obj["metadata"]["resourceVersion"]}]


def test_a_validation_error_on_a_vm_named_test_vm_is_not_retried() -> None:
    """Issue 13.11: the old message match ("test" in the text) retried this 8 times and exited 5."""
    kube = FakeKube(["7"], failures=99, message='VirtualMachine "test-vm" is invalid: spec.x: Invalid value')
    with pytest.raises(InvalidObjectError, match="test-vm"):
        guarded_json_patch(kube, VIRTUAL_MACHINE, "test-vm", "default", plan, what="VM", dry_run=DryRun.NONE)  # type: ignore[arg-type]
    assert len(kube.patches) == 1


def test_a_failed_resource_version_test_re_reads_and_re_plans() -> None:
    kube = FakeKube(["7", "8", "8"], failures=1, message="the server rejected our request: test failed")
    written, changed = guarded_json_patch(kube, VIRTUAL_MACHINE, "test-vm", "default", plan, what="VM",  # type: ignore[arg-type]
                                          dry_run=DryRun.NONE)
    assert changed and written == {"patched": kube.patches[-1]}
    assert kube.patches[0][0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert kube.patches[1][0]["value"] == "8" and kube.patches[1][1]["value"] == "8"


def test_an_object_that_keeps_changing_is_a_conflict() -> None:
    kube = FakeKube([str(i) for i in range(100)], failures=99, message="test failed")
    with pytest.raises(ConflictError):
        guarded_json_patch(kube, VIRTUAL_MACHINE, "test-vm", "default", plan, what="VM", dry_run=DryRun.NONE,  # type: ignore[arg-type]
                           )


def test_the_cnao_patch_is_retried_on_a_stale_resource_version() -> None:
    """Issue 13.12: a 409 on the NetworkAddonsConfig merge patch re-reads and re-plans instead of failing."""
    from macvtapctl.kube.errors import StaleError
    from macvtapctl.ops.cnao import via_cnao as _cnao

    class Kube:
        def __init__(self) -> None:
            self.rv = "1"
            self.patches: list[dict[str, Any]] = []

        def _nac(self) -> dict[str, Any]:
            return {"metadata": {"name": "cluster", "resourceVersion": self.rv}, "spec": {"linuxBridge": {}}}

        def get_or_none(self, *args: Any) -> dict[str, Any]:
            return self._nac()

        def get(self, *args: Any) -> dict[str, Any]:
            return self._nac()

        def merge_patch(self, res: Any, name: str, patch: dict[str, Any], **kw: Any) -> dict[str, Any]:
            self.patches.append(patch)
            if patch["metadata"]["resourceVersion"] == "1":
                self.rv = "2"  # someone else wrote it meanwhile
                raise StaleError("modified concurrently")
            return {**self._nac(), "spec": patch["spec"]}

    class Printer:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def status(self, label: str, op: str, suffix: str = "") -> None:
            self.lines.append(f"{label} {op}")

    kube = Kube()
    obj = {"spec": {"macvtap": {"devicePluginConfig": "mine"}}}
    result = _cnao(kube, Printer(), DryRun.NONE, obj)  # type: ignore[arg-type]
    assert [p["metadata"]["resourceVersion"] for p in kube.patches] == ["1", "2"]
    assert result["spec"]["macvtap"] == {"devicePluginConfig": "mine"}
