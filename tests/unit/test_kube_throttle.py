"""429 and Retry-After: the client waits as the server asks and sends again; a final answer is not retried.

The server here is the harness's API stand-in (tests/harness/standin.py): a real kube-apiserver sheds load with 429 only under overload, which a
test cannot produce on demand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from macvtapctl.errors import MacvtapctlError
from macvtapctl.kube.client import Kube, retry_delay
from macvtapctl.kube.options import Connection
from macvtapctl.kube.resources import VIRTUAL_MACHINE
from tests.harness.standin import ApiStandIn


class Throttling:
    """Answers `answers` in order (status, headers), then 200."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, str]]] = []

    def __call__(self, method: str, path: str) -> tuple[int, dict[str, str], Any]:
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        body = {"kind": "Status", "message": "slow down"} if status != 200 else \
            {"metadata": {"name": "vm1", "namespace": "default"}}
        return status, headers, body


@pytest.fixture
def server_and_kube(tmp_path: Path) -> Iterator[tuple[Throttling, ApiStandIn, Kube]]:
    script = Throttling()
    server = ApiStandIn(script)
    kube = Kube.connect(Connection(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig")), request_timeout=10))
    yield script, server, kube
    kube.close()
    server.close()


def test_a_write_throttled_with_retry_after_is_sent_again_after_the_delay(server_and_kube: tuple[Throttling, ApiStandIn, Kube]
                                                                         ) -> None:
    script, server, kube = server_and_kube
    script.answers = [(429, {"Retry-After": "1"}), (503, {"Retry-After": "1"})]
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "vm1"}}
    assert kube.apply(VIRTUAL_MACHINE, vm, "default")["metadata"]["name"] == "vm1"
    assert [s.method for s in server.seen] == ["PATCH"] * 3
    gaps = [b.at - a.at for a, b in zip(server.seen, server.seen[1:], strict=False)]
    assert all(g >= 0.95 for g in gaps), gaps


def test_an_error_without_retry_after_is_final(server_and_kube: tuple[Throttling, ApiStandIn, Kube]) -> None:
    script, server, kube = server_and_kube
    script.answers = [(500, {})]
    with pytest.raises(MacvtapctlError, match="HTTP 500"):
        kube.get(VIRTUAL_MACHINE, "vm1", "default")
    assert len(server.seen) == 1


def test_retry_delay_rules() -> None:
    assert retry_delay(429, None) == 1.0 and retry_delay(429, "3") == 3.0 and retry_delay(429, "999") == 30.0
    assert retry_delay(503, "2") == 2.0 and retry_delay(503, None) is None and retry_delay(500, "") is None
    assert retry_delay(429, "Wed, 21 Oct 2015 07:28:00 GMT") == 1.0 and retry_delay(429, "-5") == 0.0
    assert retry_delay(409, "1") is None and retry_delay(200, "1") is None
