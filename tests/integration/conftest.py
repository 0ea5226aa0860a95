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
    `doctor -A` read and judge it without an error of their own (exit 0, or 8 for findings), on real API objects.
    That they agree is not checked here: status's problems are doctor's errors by construction (ops/status.py);
    tests/unit/test_status_rules.py holds status's tables, written by hand, on the states where they disagreed.
    A test that failed is reported as it failed."""
    result = yield
    funcargs = getattr(item, "funcargs", {})
    if "control_plane" in funcargs and "admin" in funcargs:
        _status_and_doctor_answer(funcargs["admin"], item.nodeid)
    return result


def _status_and_doctor_answer(admin: str, where: str) -> None:
    from macvtapctl.errors import ExitCode
    from tests.conftest import run_cli

    for verb in (["status"], ["doctor", "-A"]):
        r = run_cli("--kubeconfig", admin, *verb, "-o", "json")
        assert r.exit_code in (0, ExitCode.FINDINGS), (where, verb, r.stderr)
        json.loads(r.stdout)  # a whole document, whatever the state
