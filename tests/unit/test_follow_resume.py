"""A watch cut by the network is resumed from the last resourceVersion seen (client-go's reflector), so `--wait`
outlives a reset connection; against a stand-in API server on loopback that resets the first watch mid-stream."""

from __future__ import annotations

import json
import socket
import struct
import threading
from urllib.parse import parse_qs, urlsplit

from macvtapctl.kube.client import Kube
from macvtapctl.kube.follow import Follow, Mirror
from macvtapctl.kube.resources import NAD
from macvtapctl.kube.transport import Endpoint
from tests.harness.standin import Loopback, read_head


def _nad(name: str, version: str) -> dict[str, object]:
    return {"metadata": {"name": name, "resourceVersion": version}}


class ApiServer(Loopback):
    """LIST at version 5; the first WATCH sends one event (version 6) and is then reset; later ones send one
    event (version 7) and stay open."""

    def __init__(self) -> None:
        self.watches: list[str] = []  # the resourceVersion each WATCH asked for
        self.lists = 0
        super().__init__()

    def handle(self, conn: socket.socket, n: int) -> None:
        data = read_head(conn)
        if not data:
            return
        target = data.split(b" ", 2)[1].decode()
        query = parse_qs(urlsplit(target).query)
        if "watch" not in query:
            self.lists += 1
            body = json.dumps({"metadata": {"resourceVersion": "5"}, "items": [_nad("a", "5")]}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            conn.close()
            return
        self.watches.append(query["resourceVersion"][0])
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        first = len(self.watches) == 1
        event = json.dumps({"type": "ADDED" if first else "MODIFIED",
                            "object": _nad("b" if first else "a", "6" if first else "7")}).encode() + b"\n"
        conn.sendall(b"%x\r\n" % len(event) + event + b"\r\n")
        if first:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST: the connection reset mid-watch
            return
        threading.Event().wait(10)
        conn.close()


def test_a_watch_reset_mid_stream_resumes_from_the_last_version_seen() -> None:
    server = ApiServer()
    kube = Kube(Endpoint(server=f"http://127.0.0.1:{server.port}"), request_timeout=5)
    mirror = Mirror(("nads",))
    follow = Follow(kube, mirror, "nads", NAD, "default")
    follow.start()
    try:
        for _ in range(40):
            mirror.take(0.25)  # raises the follower's error, if it failed
            if mirror.caches["nads"].get("a", {}).get("metadata", {}).get("resourceVersion") == "7":
                break
        assert server.watches[:2] == ["5", "6"]  # resumed from the event seen before the reset, not re-listed
        assert server.lists == 1
        assert sorted(mirror.caches["nads"]) == ["a", "b"]
        assert mirror.caches["nads"]["a"]["metadata"]["resourceVersion"] == "7"
    finally:
        follow.stop()
        server.sock.close()
