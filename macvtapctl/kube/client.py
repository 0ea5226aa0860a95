"""A small, explicit API client (transport.py connects it, wire.py carries it): plain dicts in and out.

Every write names its patch type and the field manager; `--dry-run=server` sends dryRun=All;
`--dry-run=client` never reaches this module's write methods (callers compute locally).
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from macvtapctl import __version__
from macvtapctl.errors import MacvtapctlError, NotFoundError
from macvtapctl.kube import transport, wire
from macvtapctl.kube.errors import Request, from_status, from_transport
from macvtapctl.kube.options import ConnectionOptions, DryRun
from macvtapctl.kube.resources import Resource

FIELD_MANAGER = "macvtapctl"

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

Obj = dict[str, Any]

RETRY_AFTER_ATTEMPTS = 10  # client-go's maxRetries for Retry-After
MAX_RETRY_AFTER = 30.0  # seconds; a larger request is capped, never ignored


def retry_delay(status: int, retry_after: str | None) -> float | None:
    """How long to wait before sending again, or None when this answer is final: 429 always (1 s without a
    header), a 5xx only with a Retry-After of whole seconds (RFC 9110; an HTTP date is read as 1 s)."""
    if status != 429 and not (500 <= status <= 599 and retry_after):
        return None
    try:
        seconds = float(int((retry_after or "1").strip()))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _version() -> str:

    return __version__


class Kube:
    """Raw-JSON access to any resource, with errors translated for users."""

    def __init__(self, ep: transport.Endpoint, *, request_timeout: float | None = None,
                 field_manager: str = FIELD_MANAGER) -> None:
        self.endpoint = ep
        self.pool = wire.Wire(ep)
        self.headers = {"Accept": "application/json", "User-Agent": f"macvtapctl/{_version()}"}
        self._impersonate = ep.impersonation.headers()
        self.request_timeout = request_timeout
        self.field_manager = field_manager

    def _headers(self, extra: dict[str, str] | None = None) -> tuple[Any, Any]:
        """This request's headers (credentials are read per request: a token file or an exec plugin's token may
        have changed), and the exec credential used, if any (for a 401)."""
        from urllib3 import HTTPHeaderDict

        auth, used = self.endpoint.credentials.headers()
        if used is not None:
            self.pool.use_client_cert(used.cert, used.key)
        headers = HTTPHeaderDict({**self.headers, **auth, **(extra or {})})
        for name, value in self._impersonate:
            headers.add(name, value)  # Impersonate-Group may repeat
        return headers, used

    @classmethod
    def connect(cls, settings: ConnectionOptions, *, field_manager: str = FIELD_MANAGER) -> Kube:
        return cls(transport.endpoint(settings), request_timeout=settings.request_timeout,
                   field_manager=field_manager)

    @property
    def server(self) -> str:
        return self.endpoint.server

    def close(self) -> None:
        self.pool.clear()

    @staticmethod
    def _target(path: str, query: builtins.list[tuple[str, str]] | None) -> str:
        from urllib.parse import urlencode

        return path + (f"?{urlencode(query)}" if query else "")

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport ---
    def request(self, method: str, path: str, req: Request, *, query: builtins.list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str | None = None) -> Any:
        """One API call; a 429, or a 5xx with Retry-After (the server shedding load, the request not carried out),
        is retried after the delay the server asks for, as client-go does (at most RETRY_AFTER_ATTEMPTS)."""
        for attempt in range(RETRY_AFTER_ATTEMPTS):
            status, data, retry_after = self._send(method, path, req, query, body, content_type)
            if 200 <= status <= 299:
                return json.loads(data) if data else None
            if retry_after is None or attempt == RETRY_AFTER_ATTEMPTS - 1:
                break
            time.sleep(retry_after)
        raise from_status(status, data, req, self.server)

    def _send(self, method: str, path: str, req: Request, query: builtins.list[tuple[str, str]] | None, body: Any,
              content_type: str | None) -> tuple[int, bytes, float | None]:
        """(status, body, seconds to wait before a retry or None). A 401 to an exec plugin's credential runs the
        plugin again and resends once (the server did not act on a request it did not authenticate)."""
        data = None if body is None else json.dumps(body).encode()
        extra = {"Content-Type": content_type or "application/json"} if body is not None else None
        for _ in range(2):
            headers, used = self._headers(extra)
            try:
                resp = self.pool.request(method, self._target(path, query), body=data, headers=headers,
                                         timeout=self.request_timeout)
            except MacvtapctlError:
                raise
            except Exception as exc:  # socket, TLS and HTTP errors
                raise from_transport(exc, req, self.server, self.request_timeout) from None
            if resp.status != 401 or not self.endpoint.credentials.rejected(used):
                break
        return resp.status, resp.data, retry_delay(resp.status, resp.headers.get("Retry-After"))

    # --- reads ---
    def server_version(self) -> Obj:
        result: Obj = self.request("GET", "/version", Request("get", Resource("", "", "version", "Version",
                                                                                namespaced=False)))
        return result

    def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        result: Obj = self.request("GET", res.path(namespace, name), Request("get", res, namespace, name))
        return result

    def get_or_none(self, res: Resource, name: str, namespace: str | None = None) -> Obj | None:

        try:
            return self.get(res, name, namespace)
        except NotFoundError:
            return None

    def list(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None) -> builtins.list[Obj]:
        """All objects (namespace None = every namespace); follows `continue` tokens."""
        items: builtins.list[Obj] = []
        for page in self._pages(res, namespace, label_selector, field_selector):
            kind = res.kind
            for item in page.get("items") or []:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", kind)
                items.append(item)
        return items

    def _pages(self, res: Resource, namespace: str | None, label_selector: str | None,
               field_selector: str | None) -> Iterator[Obj]:
        cont = ""
        while True:
            query = [("limit", "500")]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if cont:
                query.append(("continue", cont))
            page: Obj = self.request("GET", res.path(namespace), Request("list", res, namespace), query=query)
            yield page
            cont = (page.get("metadata") or {}).get("continue") or ""
            if not cont:
                return

    def list_with_version(self, res: Resource, namespace: str | None = None, *, label_selector: str | None = None,
                          field_selector: str | None = None) -> tuple[builtins.list[Obj], str]:
        """All objects and the list's resourceVersion, to watch from."""
        items: builtins.list[Obj] = []
        version = ""
        for page in self._pages(res, namespace, label_selector, field_selector):
            items += page.get("items") or []
            version = (page.get("metadata") or {}).get("resourceVersion") or version
        return items, version

    def watch(self, res: Resource, namespace: str | None = None, *, resource_version: str,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout_seconds: int = 300, on_open: Callable[[Any], None] | None = None) -> Iterator[tuple[str, Obj]]:
        """(type, object) of each change after resource_version, as the server streams them, until the server
        ends the watch (timeout_seconds). An ERROR event (410 Gone: the version is too old) is yielded as is:
        the caller lists again. `on_open` gets the open stream: its shutdown() ends the watch from another
        thread."""
        query = [("watch", "true"), ("resourceVersion", resource_version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(timeout_seconds))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        req = Request("watch", res, namespace)
        try:
            stream = self.pool.stream("GET", self._target(res.path(namespace), query), headers=self._headers()[0],
                                      connect_timeout=self.request_timeout, read_timeout=timeout_seconds + 30)
        except MacvtapctlError:
            raise
        except Exception as exc:
            raise from_transport(exc, req, self.server, self.request_timeout) from None
        try:
            if not 200 <= stream.status <= 299:
                raise from_status(stream.status, stream.data, req, self.server)
            if on_open is not None:
                on_open(stream)
            for line in stream:
                if line.strip():
                    event = json.loads(line)
                    yield str(event.get("type")), event.get("object") or {}
        except MacvtapctlError:
            raise
        except Exception as exc:
            raise from_transport(exc, req, self.server, self.request_timeout) from None
        finally:
            stream.close()

    # --- writes ---
    def _write_query(self, dry_run: DryRun, *, manager: bool = True, strict: bool = False,
                     force: bool = False) -> builtins.list[tuple[str, str]]:
        if dry_run is DryRun.CLIENT:
            raise AssertionError("--dry-run=client must not reach the API server")
        query: builtins.list[tuple[str, str]] = []
        if manager:
            query.append(("fieldManager", self.field_manager))
        if dry_run is DryRun.SERVER:
            query.append(("dryRun", "All"))
        if strict:
            query.append(("fieldValidation", "Strict"))
        if force:
            query.append(("force", "true"))
        return query

    def create(self, res: Resource, obj: Obj, namespace: str | None = None, *,
               dry_run: DryRun = DryRun.NONE, strict: bool = True) -> Obj:
        name = (obj.get("metadata") or {}).get("name")
        result: Obj = self.request("POST", res.path(namespace), Request("create", res, namespace, name),
                                   query=self._write_query(dry_run, strict=strict), body=obj,
                                   content_type="application/json")
        return result

    def merge_patch(self, res: Resource, name: str, patch: Obj, namespace: str | None = None, *,
                    dry_run: DryRun = DryRun.NONE, subresource: str | None = None, strict: bool = True) -> Obj:
        """RFC 7386 merge patch; include metadata.resourceVersion in `patch` to guard it.

        Strict field validation: a field the schema does not know is an error, never silently pruned.
        """
        result: Obj = self.request(
            "PATCH", res.path(namespace, name, subresource), Request("patch", res, namespace, name),
            query=self._write_query(dry_run, strict=strict), body=patch, content_type=MERGE_PATCH)
        return result

    def json_patch(self, res: Resource, name: str, ops: builtins.list[Obj], namespace: str | None = None, *,
                   dry_run: DryRun = DryRun.NONE, subresource: str | None = None) -> Obj:
        """RFC 6902 JSON patch; start `ops` with a `test` of /metadata/resourceVersion to guard it."""
        result: Obj = self.request(
            "PATCH", res.path(namespace, name, subresource), Request("patch", res, namespace, name),
            query=self._write_query(dry_run), body=ops, content_type=JSON_PATCH)
        return result

    def apply(self, res: Resource, obj: Obj, namespace: str | None = None, *,
              dry_run: DryRun = DryRun.NONE, force: bool = False, strict: bool = True) -> Obj:
        """Server-side apply of a whole object with our field manager."""
        name = obj["metadata"]["name"]
        result: Obj = self.request(
            "PATCH", res.path(namespace, name), Request("patch", res, namespace, name),
            query=self._write_query(dry_run, strict=strict, force=force), body=obj,
            content_type=APPLY_PATCH)
        return result

    def replace(self, res: Resource, obj: Obj, namespace: str | None = None, *,
                dry_run: DryRun = DryRun.NONE) -> Obj:
        """PUT; the object's metadata.resourceVersion guards it."""
        name = obj["metadata"]["name"]
        result: Obj = self.request("PUT", res.path(namespace, name), Request("update", res, namespace, name),
                                   query=self._write_query(dry_run), body=obj,
                                   content_type="application/json")
        return result

    def delete(self, res: Resource, name: str, namespace: str | None = None, *,
               dry_run: DryRun = DryRun.NONE, grace_period: int | None = None,
               preconditions: dict[str, str] | None = None) -> Obj | None:
        """`preconditions` (uid, resourceVersion): delete only the object as it was read (409 otherwise)."""
        query = self._write_query(dry_run, manager=False)
        if grace_period is not None:
            query.append(("gracePeriodSeconds", str(grace_period)))
        body = ({"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": preconditions}
                if preconditions else None)
        result: Obj | None = self.request(
            "DELETE", res.path(namespace, name), Request("delete", res, namespace, name), query=query, body=body)
        return result
