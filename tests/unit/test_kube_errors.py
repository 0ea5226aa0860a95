from __future__ import annotations

import json

import pytest

from macvtapctl.errors import ExitCode
from macvtapctl.kube.errors import AlreadyExistsError, Request, StaleError, from_status
from macvtapctl.kube.resources import CONFIGMAP, KUBEVIRT, NODE

S = "https://127.0.0.1:6443"


def status(reason: str, message: str = "", **details: str) -> str:
    return json.dumps({"kind": "Status", "reason": reason, "message": message, "details": details})


@pytest.mark.parametrize(("code", "body", "exit_code"), [
    (401, status("Unauthorized"), ExitCode.FORBIDDEN),
    (403, status("Forbidden", "nope"), ExitCode.FORBIDDEN),
    (404, status("NotFound", "x", name="x"), ExitCode.PRECONDITION),
    (404, "404 page not found", ExitCode.PRECONDITION),
    (409, status("AlreadyExists"), ExitCode.CONFLICT),
    (409, status("Conflict"), ExitCode.CONFLICT),
    (422, status("Invalid", "bad"), ExitCode.USAGE),
    (500, status("InternalError", "boom"), ExitCode.ERROR),
    (504, status("Timeout", "slow"), ExitCode.TIMEOUT),
])
def test_status_codes_map_to_exit_codes(code: int, body: str, exit_code: ExitCode) -> None:
    err = from_status(code, body, Request("get", CONFIGMAP, "default", "x"), S)
    assert err.exit_code == exit_code
    assert "\n" not in err.message


def test_forbidden_names_verb_resource_and_scope() -> None:
    ns = from_status(403, status("Forbidden", "m"), Request("patch", KUBEVIRT, "kubevirt", "kubevirt"), S)
    assert ns.message.startswith('forbidden: the current user cannot patch kubevirts.kubevirt.io in namespace "kubevirt"')
    cluster = from_status(403, status("Forbidden", "m"), Request("list", NODE), S)
    assert "cannot list nodes at the cluster scope" in cluster.message
    anyns = from_status(403, status("Forbidden", "m"), Request("list", KUBEVIRT), S)
    assert "in any namespace" in anyns.message


def test_conflicts_are_told_apart() -> None:
    req = Request("patch", CONFIGMAP, "default", "x")
    assert isinstance(from_status(409, status("Conflict"), req, S), StaleError)
    assert isinstance(from_status(409, status("AlreadyExists"), req, S), AlreadyExistsError)
    assert not isinstance(from_status(409, status("AlreadyExists"), req, S), StaleError)


def test_unauthorized_never_echoes_credentials() -> None:
    err = from_status(401, status("Unauthorized", "token abc123 invalid"), Request("get", CONFIGMAP), S)
    assert "abc123" not in err.message
