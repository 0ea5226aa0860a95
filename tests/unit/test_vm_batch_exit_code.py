"""docs/exit-codes.md: a batch (`vm create --count N --apply`) reports each failing VM, then exits with the failures'
code when they all share one, else 1. (The real API server refusing one VM of a batch: tests/integration/test_vm.py
test_batch_with_one_failing_vm.)"""

from __future__ import annotations

from typing import Any

import pytest

from macvtapctl.errors import ConflictError, ExitCode, ForbiddenError, InvalidObjectError, MacvtapctlError
from macvtapctl.kube.options import DryRun
from macvtapctl.ops.vm import apply_vms


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def status(self, label: str, operation: str, suffix: str = "") -> None: ...

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def error(self, message: str) -> None:
        self.errors.append(message)


class Kube:
    """Applies every VM but those in `refuse`, which fail with the error given."""

    def __init__(self, refuse: dict[str, MacvtapctlError]) -> None:
        self.refuse = refuse

    def list(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return []

    def apply(self, res: Any, obj: dict[str, Any], namespace: str, **kwargs: Any) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        if name in self.refuse:
            raise self.refuse[name]
        return obj


def _vms(n: int) -> list[dict[str, Any]]:
    return [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": f"b-{i}"}}
            for i in range(1, n + 1)]


@pytest.mark.parametrize(("refuse", "code"), [
    ({"b-2": InvalidObjectError("x"), "b-4": InvalidObjectError("y")}, ExitCode.USAGE),
    ({"b-3": ForbiddenError("x")}, ExitCode.FORBIDDEN),
    ({"b-2": InvalidObjectError("x"), "b-3": ConflictError("y")}, ExitCode.ERROR),
])
def test_the_shared_code_else_1(refuse: dict[str, MacvtapctlError], code: ExitCode) -> None:
    report = Report()
    with pytest.raises(MacvtapctlError) as err:
        apply_vms(Kube(refuse), report, _vms(5), "default", DryRun.NONE, 3)  # type: ignore[arg-type]
    assert err.value.exit_code == code
    names = ", ".join(sorted(refuse))
    assert err.value.message == f"{len(refuse)} of 5 VMs failed: {names}"
    assert [e.split(":")[0] for e in report.errors] == [f"VM {n}" for n in sorted(refuse)]
