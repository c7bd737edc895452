"""The `admin` verbs' client for the frontends' admin ports: HTTP(S) with the CLI's TLS and
bearer token, from the standard library (the base install stays grpcio and protobuf only).

Endpoints are tried in order; the next one is asked only when one cannot be reached (any
frontend answers for the whole cluster). A refusal is the SDK's error tree, by the HTTP status,
so that the CLI prints it (and its hint) as for any other verb.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from client_sdk import RegistryRPCError, RegistryUnavailableError, StatusCode
from registry_cli.errors import one_line
from registry_cli.options import ClientOptions

_CODES = {
    400: StatusCode.INVALID_ARGUMENT,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.NOT_FOUND,
    409: StatusCode.FAILED_PRECONDITION,
    503: StatusCode.UNAVAILABLE,
}


def base_url(endpoint: str, tls: bool) -> str:
    """`host:port` as a URL (https when TLS is on), a URL as it is, without a final slash."""
    if "://" in endpoint:
        return endpoint.rstrip("/")
    return f"{'https' if tls else 'http'}://{endpoint}"


class AdminClient:
    """Asks the admin ports with the CLI's TLS and token, moving on only past unreachable ones."""

    def __init__(self, options: ClientOptions) -> None:
        self._options = options
        self._urls = [base_url(e, bool(options.cacert)) for e in options.admin_endpoints]
        self._context: ssl.SSLContext | None = None
        if options.cacert:
            self._context = ssl.create_default_context(cafile=options.cacert)
            if options.cert:
                self._context.load_cert_chain(options.cert, options.key)

    async def get(self, path: str) -> Any:
        """GET `path`: the answer's JSON document (see `request` for the errors)."""
        return await self.request("GET", path)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """The answer's JSON document.

        Raises:
            RegistryRPCError: the frontend refused or failed (the subclass for the status);
                RegistryUnavailableError when no admin endpoint could be reached.
        """
        return await asyncio.to_thread(self._request, method, path, body)

    def _request(self, method: str, path: str, body: Any) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._options.token:
            headers["Authorization"] = f"Bearer {self._options.token}"
        failures = []
        for url in self._urls:
            request = urllib.request.Request(url + path, data, headers, method=method)
            try:
                with urllib.request.urlopen(
                    request, timeout=self._options.timeout_seconds, context=self._context
                ) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as err:
                raise _refusal(err, url) from err
            except (urllib.error.URLError, OSError, TimeoutError) as err:
                reason = getattr(err, "reason", err)
                failures.append(f"{url}: {reason}")
        raise RegistryUnavailableError(
            StatusCode.UNAVAILABLE,
            f"no admin endpoint answered ({'; '.join(failures)}); set --admin-endpoints or "
            "NODEREGISTRY_ADMIN_ENDPOINTS to a frontend's admin port",
        )


def _refusal(err: urllib.error.HTTPError, url: str) -> RegistryRPCError:
    """The error an HTTP refusal stands for: `{"error": {"code", "message"}}` names the gRPC
    code (frontends before the HTTP API sent `{"error": "message"}`: the status says it)."""
    code = _CODES.get(err.code, StatusCode.UNKNOWN)
    try:
        error = json.loads(err.read()).get("error", "")
    except (ValueError, AttributeError):
        error = ""
    if isinstance(error, dict):
        code = StatusCode.__members__.get(str(error.get("code")), code)
        error = error.get("message", "")
    return RegistryRPCError(
        code, f"{one_line(str(error)) or err.reason} (admin {url}, HTTP {err.code})"
    )
