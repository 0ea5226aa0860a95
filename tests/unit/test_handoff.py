"""The hand-off's decisions (agent/handoff.py), without sockets: which announcements set which link down, and when
a link set down is set up again (its guest still writes to it: it never left)."""

from __future__ import annotations

import collections

from macvtapctl.agent.handoff import HANDOFF, RECENT, REVERT_AFTER, REVERTED, HandOff
from macvtapctl.agent.link_registry import LinkRegistry

MAC = "02:00:00:00:00:aa"
WHERE = ("/run/netns/pod", "net1")
POD = ("vms", "virt-launcher-mover-x7k2p")  # as the CNI ADD named it


class FakeLinks:
    """One pod link: up or down, its tx_dropped, or gone."""

    def __init__(self, present: bool = True) -> None:
        self.present, self.is_up, self.tx_dropped = present, True, 7
        self.calls: list[tuple[str, str, str, str]] = []

    def down(self, netns: str, ifname: str, mac: str) -> int | None:
        self.calls.append(("down", netns, ifname, mac))
        if not self.present:
            return None
        self.is_up = False
        return self.tx_dropped

    def dropped(self, netns: str, ifname: str, mac: str) -> int | None:
        return self.tx_dropped if self.present else None

    def up(self, netns: str, ifname: str, mac: str) -> bool:
        self.calls.append(("up", netns, ifname, mac))
        self.is_up = self.present
        return self.present


def watcher(present: bool = True) -> tuple[HandOff, LinkRegistry, FakeLinks, list[str]]:
    registry = LinkRegistry()
    registry.attach(MAC.upper(), *WHERE, "eth1", POD)
    links = FakeLinks(present)
    counted: list[str] = []
    h = HandOff.__new__(HandOff)  # no packet sockets: only the decisions are under test
    h.registry, h.links = registry, links
    h.on_handoff, h.on_revert = (lambda: counted.append("handoff")), (lambda: counted.append("reverted"))
    h.watched, h.events = {}, collections.deque(maxlen=RECENT)
    h.told = []  # type: ignore[attr-defined]
    h.tell = lambda pod, reason, text: h.told.append((pod, reason, text))  # type: ignore[attr-defined]
    return h, registry, links, counted


def test_an_announcement_on_the_links_own_nic_sets_it_down_once() -> None:
    h, registry, links, counted = watcher()
    h.seen(MAC, "eth1")
    assert links.calls == [("down", *WHERE, MAC)] and counted == ["handoff"] and not links.is_up
    assert registry.attached_to(MAC) is None  # forgotten: the next announcement is not acted on again
    h.seen(MAC, "eth1")
    assert len(links.calls) == 1
    assert [e["event"] for e in h.recent()] == ["handoff"] and h.recent()[0]["mac"] == MAC
    [(pod, reason, text)] = h.told  # type: ignore[attr-defined]
    assert pod == POD and reason == HANDOFF and MAC in text and "net1" in text


def test_other_nics_and_other_macs_change_nothing() -> None:
    h, registry, links, counted = watcher()
    h.seen(MAC, "e2eshim")  # the node's macvlan shim receives the VM's frames locally
    h.seen("02:00:00:00:00:bb", "eth1")
    assert links.calls == [] and counted == [] and registry.attached_to(MAC) is not None and h.recent() == []
    assert h.told == []  # type: ignore[attr-defined]


def test_a_link_that_is_gone_stays_known_and_uncounted() -> None:
    h, registry, links, counted = watcher(present=False)  # the pod ended, or its link has another MAC now
    h.seen(MAC, "eth1")
    assert len(links.calls) == 1 and counted == [] and registry.attached_to(MAC) is not None and not h.watched


def test_del_forgets_the_link() -> None:
    h, registry, links, _ = watcher()
    registry.detach(*WHERE)
    h.seen(MAC, "eth1")
    assert links.calls == []


def test_a_guest_that_moved_writes_nothing_and_its_link_stays_down_until_it_is_gone() -> None:
    h, _, links, counted = watcher()
    h.seen(MAC, "eth1")
    links.tx_dropped += REVERT_AFTER - 1  # a flushed queue is not a running guest
    h.check()
    assert not links.is_up and counted == ["handoff"] and WHERE in h.watched
    links.present = False  # the source pod ended: the hand-off is over
    h.check()
    assert h.watched == {} and counted == ["handoff"]


def test_a_guest_still_writing_to_its_down_link_gets_it_back() -> None:
    h, registry, links, counted = watcher()
    h.seen(MAC, "eth1")
    links.tx_dropped += REVERT_AFTER
    h.check()
    assert links.is_up and links.calls[-1] == ("up", *WHERE, MAC) and counted == ["handoff", "reverted"]
    assert registry.attached_to(MAC) == (*WHERE, "eth1") and h.watched == {}
    assert [e["event"] for e in h.recent()] == ["handoff", "reverted"]
    assert [(pod, reason) for pod, reason, _ in h.told] == [(POD, HANDOFF), (POD, REVERTED)]  # type: ignore[attr-defined]
    h.seen(MAC, "eth1")  # known again: the next announcement is acted on
    assert not links.is_up and counted[-1] == "handoff"
