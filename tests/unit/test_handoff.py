"""The hand-off's decision (agent/handoff.py), without sockets: which announcements set which link down."""

from __future__ import annotations

from macvtapctl.agent.handoff import HandOff
from macvtapctl.agent.link_registry import LinkRegistry

MAC = "02:00:00:00:00:aa"


def watcher(answer: bool = True) -> tuple[HandOff, LinkRegistry, list[tuple[str, str, str]], list[int]]:
    registry = LinkRegistry()
    registry.attach(MAC.upper(), "/run/netns/pod", "net1", "eth1")
    calls: list[tuple[str, str, str]] = []
    counted: list[int] = []
    h = HandOff.__new__(HandOff)  # no packet sockets: only the decision is under test

    def set_down(netns: str, ifname: str, mac: str) -> bool:
        calls.append((netns, ifname, mac))
        return answer

    h.registry, h.set_down, h.on_handoff = registry, set_down, lambda: counted.append(1)
    return h, registry, calls, counted


def test_an_announcement_on_the_links_own_nic_sets_it_down_once() -> None:
    h, registry, calls, counted = watcher()
    h.seen(MAC, "eth1")
    assert calls == [("/run/netns/pod", "net1", MAC)] and counted == [1]
    assert registry.attached_to(MAC) is None  # forgotten: the next announcement is not acted on again
    h.seen(MAC, "eth1")
    assert len(calls) == 1


def test_other_nics_and_other_macs_change_nothing() -> None:
    h, registry, calls, counted = watcher()
    h.seen(MAC, "e2eshim")  # the node's macvlan shim receives the VM's frames locally
    h.seen("02:00:00:00:00:bb", "eth1")
    assert calls == [] and counted == [] and registry.attached_to(MAC) is not None


def test_a_link_that_is_gone_stays_known_and_uncounted() -> None:
    h, registry, calls, counted = watcher(answer=False)  # the pod ended, or its link has another MAC now
    h.seen(MAC, "eth1")
    assert len(calls) == 1 and counted == [] and registry.attached_to(MAC) is not None


def test_del_forgets_the_link() -> None:
    h, registry, calls, _ = watcher()
    registry.detach("/run/netns/pod", "net1")
    h.seen(MAC, "eth1")
    assert calls == []
