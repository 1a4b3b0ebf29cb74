"""HTTP clients for Restate: the admin API (:9070) and the ingress (:8080). One httpx client per endpoint.

Connection errors and error statuses are told apart and wrapped once in `HttpError` with the method,
URL, status and body, so a task can print what Restate actually said.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Self

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from drillkit.errors import HttpError

JOURNAL_COLUMNS = "index, entry_type, name, entry_lite_json, appended_at"

SERVICE = "WriterAgentRestate"
HANDLER = "run"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)
TRANSIENT_RETRY_S = 5.0
# Restate's SQL answers that mean "ask again in a moment", not "the system failed": the one list for every
# backend (a native server, a container, any node of a cluster; through the admin API or restatectl).
# Each was seen here right after a start, a restart or a leadership change, and went away within a second.
TRANSIENT_QUERY_ERRORS: tuple[str, ...] = (
    # "partition N doesn't exist on this node": partitions still starting or moving (Restate calls it benign).
    "doesn't exist on this node",
    # The first query after a restart, before the node's scanners are registered.
    "No such scanner",
    # "node N1:3 was shut down or removed": asked of the node's generation from before a restart.
    "was shut down or removed",
    # A broken chunked answer: Restate closed the connection mid-answer (httpx's RemoteProtocolError).
    "incomplete chunked read",
    "peer closed connection without sending complete message body",
)


def is_transient_message(text: str) -> bool:
    """Does an error text (an HTTP body, restatectl's stderr) carry one of Restate's transient answers?"""
    return any(marker in text for marker in TRANSIENT_QUERY_ERRORS)


def is_transient_query_error(exc: BaseException) -> bool:
    """A failed SQL query worth asking again: a server error (5xx) or a broken answer (no status) whose
    text is one of Restate's transient answers. Anything else (a bad query, a server that is down) is not."""
    if not isinstance(exc, HttpError) or (exc.status is not None and exc.status < 500):
        return False
    return is_transient_message(exc.body)


def is_query_error(exc: BaseException | None) -> bool:
    """Did this come from asking Restate's SQL API (an observation of the tool's, not the system's state)?"""
    return isinstance(exc, HttpError) and exc.url.rstrip("/").endswith("/query")


class _Api:
    def __init__(
        self,
        base_url: str,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._transport = transport
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    def retarget(self, base_url: str) -> None:
        """Talk to another node from now on (a cluster's survivor): same client settings, new base URL."""
        if base_url.rstrip("/") == self.base_url:
            return
        self.http.close()
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=self._timeout, transport=self._transport)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.RequestError as exc:
            raise HttpError(method, url, None, f"{type(exc).__name__}: {exc}") from None
        if response.status_code not in ok:
            raise HttpError(method, url, response.status_code, response.text)
        return response

    def healthy(self, path: str) -> bool:
        try:
            return self.http.get(path, timeout=2.0).status_code == 200
        except httpx.RequestError:
            return False


class AdminApi(_Api):
    """Restate's admin API: health, deployments, SQL introspection, invocation control."""

    def __init__(
        self,
        base_url: str,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transient_retry_s: float = TRANSIENT_RETRY_S,
    ) -> None:
        super().__init__(base_url, transport, timeout)
        # How long a transient SQL answer is asked again: a parameter so unit tests need not wait it out.
        self.transient_retry_s = transient_retry_s

    def healthy_admin(self) -> bool:
        return self.healthy("/health")

    def services(self) -> list[str]:
        return [s["name"] for s in self.request("GET", "/services").json().get("services", [])]

    def deployments(self) -> list[dict[str, Any]]:
        """`GET /deployments`: each with id, uri, http_version and services (name, revision)."""
        return list(self.request("GET", "/deployments").json().get("deployments", []))

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a SQL query; `accept: application/json` (without it Restate answers in Arrow).

        Restate answers a few queries with a transient error while partitions move (after a start, a
        restart or a leadership change; `TRANSIENT_QUERY_ERRORS`); those are asked again for a few
        seconds, so no probe mistakes a moving partition for a failed system. A query only reads, so
        asking again is safe."""
        retrying = Retrying(
            stop=stop_after_delay(self.transient_retry_s),
            wait=wait_fixed(0.1),
            retry=retry_if_exception(is_transient_query_error),
            reraise=True,
        )
        response = retrying(self.request, "POST", "/query", json={"query": sql}, headers={"accept": "application/json"})
        return list(response.json().get("rows", []))

    def query_ready(self) -> bool:
        """The SQL API answers (for a moment after health, partitions may not be found yet)."""
        try:
            self.query("SELECT id FROM sys_invocation LIMIT 1")
        except HttpError:
            return False
        return True

    def invocation(self, invocation_id: str) -> dict[str, Any] | None:
        rows = self.query(f"SELECT * FROM sys_invocation WHERE id = '{_sql_id(invocation_id)}'")
        return rows[0] if rows else None

    def journal(self, invocation_id: str) -> list[dict[str, Any]]:
        return self.query(
            f"SELECT {JOURNAL_COLUMNS} FROM sys_journal WHERE id = '{_sql_id(invocation_id)}' ORDER BY index"
        )

    def journals(self, invocation_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Many invocations' journals in one query (a poll over a batch costs one request, not N): each id
        maps to its entries in index order, an id with none to []."""
        ids = list(invocation_ids)
        rows = self.query(
            f"SELECT id, {JOURNAL_COLUMNS} FROM sys_journal WHERE id IN ({sql_list(ids)}) ORDER BY id, index"
        )
        by_id: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        for row in rows:
            by_id.setdefault(row["id"], []).append(row)
        return by_id

    def journal_events(self, invocation_id: str) -> list[dict[str, Any]]:
        return self.query(
            f"SELECT * FROM sys_journal_events WHERE id = '{_sql_id(invocation_id)}' ORDER BY appended_at"
        )

    def resume(self, invocation_id: str, deployment: str | None = None) -> None:
        """Retry a backing-off invocation now, or resume a paused one. `deployment` (an id, `latest` or
        `keep`) moves a paused or suspended one onto another deployment; Restate refuses it (409) while
        the invocation is running."""
        params = {"deployment": _deployment_ref(deployment)} if deployment else None
        self.request("PATCH", f"/invocations/{invocation_id}/resume", ok=(200, 202, 204), params=params)

    def pause(self, invocation_id: str) -> None:
        """`PATCH /invocations/{id}/pause`: 202 accepted (1.7.12 pauses a running invocation at its next
        journal entry, not at once), 200 already paused."""
        self.request("PATCH", f"/invocations/{invocation_id}/pause", ok=(200, 202))

    def register_deployment(self, uri: str, use_http11: bool = False) -> dict[str, Any]:
        """`POST /deployments` without force: a new deployment (201; its services become their latest
        revision), or 200 when Restate has it unchanged. Returns Restate's answer: `id`, `services`."""
        response = self.request("POST", "/deployments", ok=(200, 201), json={"uri": uri, "use_http_11": use_http11})
        return dict(response.json())

    def delete_deployment(self, deployment_id: str) -> None:
        """`DELETE /deployments/{id}?force=true`. Restate 1.7 implements only the forced delete (501 without
        it): nothing stops it removing a deployment that invocations are still pinned to, so a caller
        checks that it is drained first."""
        self.request(
            "DELETE", f"/deployments/{_deployment_ref(deployment_id)}", ok=(200, 202), params={"force": "true"}
        )

    def service(self, name: str = SERVICE) -> dict[str, Any]:
        """`GET /services/{name}`: its latest `revision` and the `deployment_id` that new invocations run on."""
        return dict(self.request("GET", f"/services/{name}").json())

    def kill_invocation(self, invocation_id: str) -> None:
        """Restate's kill: the invocation ends at once, completed with failure, nothing more runs."""
        self.request("PATCH", f"/invocations/{invocation_id}/kill", ok=(200, 202, 204))

    def invocations(self, limit: int = 50) -> list[dict[str, Any]]:
        return self.query(
            "SELECT id, target, status, created_at, modified_at, retry_count, completion_result "
            f"FROM sys_invocation ORDER BY created_at DESC LIMIT {int(limit)}"
        )


class IngressApi(_Api):
    """Restate's ingress: calls WriterAgentRestate.run the way the HOW-TO's curl does."""

    def healthy_ingress(self) -> bool:
        return self.healthy("/restate/health")

    def call(
        self,
        body: dict[str, Any],
        timeout_s: float = 600.0,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        service: str = SERVICE,
        handler: str = HANDLER,
    ) -> Any:
        """Synchronous `POST /WriterAgentRestate/run` (or another service's handler): waits for the result."""
        sent = {**(headers or {}), **({"idempotency-key": idempotency_key} if idempotency_key else {})}
        response = self.request(
            "POST", f"/{service}/{handler}", json=body, headers=sent, timeout=httpx.Timeout(timeout_s, connect=2.0)
        )
        return response.json()

    def send(
        self,
        body: dict[str, Any],
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
        service: str = SERVICE,
        handler: str = HANDLER,
    ) -> str:
        """Asynchronous `POST /WriterAgentRestate/run/send`: returns the invocation id (202 Accepted)."""
        sent = {**(headers or {}), **({"idempotency-key": idempotency_key} if idempotency_key else {})}
        response = self.request("POST", f"/{service}/{handler}/send", ok=(200, 202), json=body, headers=sent)
        data = response.json()
        if "invocationId" not in data:
            raise HttpError(
                "POST",
                f"{self.base_url}/{service}/{handler}/send",
                response.status_code,
                f"no invocationId in {json.dumps(data)}",
            )
        return str(data["invocationId"])

    def output(self, invocation_id: str) -> Any:
        """The invocation's result; HttpError with status 470 while it is still running."""
        response = self.request("GET", f"/restate/invocation/{invocation_id}/output")
        return response.json()


def _sql_id(invocation_id: str) -> str:
    # Invocation ids are base62-ish tokens ("inv_..."); refuse anything that could escape the literal.
    if not invocation_id.replace("_", "").isalnum():
        raise ValueError(f"not an invocation id: {invocation_id!r}")
    return invocation_id


def _deployment_ref(value: str) -> str:
    # Deployment ids ("dp_...") and Restate's `latest`/`keep`; refuse anything that could leave the path.
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not a deployment id: {value!r}")
    return value


def sql_list(invocation_ids: Iterable[str]) -> str:
    """`'inv_a', 'inv_b'` for an `IN (...)` clause, each id checked like `_sql_id`."""
    return ", ".join(f"'{_sql_id(i)}'" for i in invocation_ids)
