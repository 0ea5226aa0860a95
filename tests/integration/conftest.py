from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)



@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After every integration test that built a cluster state (before its fixtures clean it up): `status` and
    `doctor -A` give the same verdict on it (one judge, issue 25) — the same exit code, and status's problems are
    exactly doctor's errors. A test that failed is reported as it failed."""
    result = yield
    funcargs = getattr(item, "funcargs", {})
    if "control_plane" in funcargs and "admin" in funcargs:
        _status_and_doctor_agree(funcargs["admin"], item.nodeid)
    return result


def _status_and_doctor_agree(admin: str, where: str) -> None:
    from macvtapctl.errors import ExitCode
    from tests.conftest import run_cli

    status = run_cli("--kubeconfig", admin, "status", "-o", "json")
    found = run_cli("--kubeconfig", admin, "doctor", "-A", "-o", "json")
    assert status.exit_code in (0, ExitCode.FINDINGS), (where, status.stderr)
    assert found.exit_code in (0, ExitCode.FINDINGS), (where, found.stderr)
    errors = [f for f in json.loads(found.stdout)["findings"] if f["severity"] == "error"]
    lines = [f"{f['object']}: {f['cause']}" + (f" (fix: {f['fix']})" if f["fix"] else "") for f in errors]
    doc = json.loads(status.stdout)
    assert (status.exit_code, sorted(doc["problems"]), doc["complete"]) == (
        found.exit_code, sorted(lines), not errors), where
