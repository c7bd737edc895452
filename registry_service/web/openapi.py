"""The OpenAPI 3.1 document of the HTTP API (served at /v1/openapi.json), written by hand beside
the shapes it describes (web/shapes.py); tests/integration/test_http_openapi.py checks real
answers, event streams included, against it with openapi-core, so it cannot drift."""

from __future__ import annotations

from typing import Any

from noderegistry import __version__

from registry_service.web.openapi_operator import operator_paths, operator_schemas

_REF = "#/components/schemas/"
_JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object with exactly these properties, all required."""
    return {
        "type": "object",
        "required": sorted(properties),
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


_INT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_BOOL = {"type": "boolean"}
_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"}
_STATUS = {"type": "string", "enum": ["UP", "DRAINING", "SUSPECT", "OUT_OF_SERVICE"]}
_HEALTH = {
    "type": "string",
    "enum": ["UNCHECKED", "PASSING", "FAILING"],
    "description": "UNCHECKED: no check (healthy while it renews); FAILING: listed, not offered "
    "for new work",
}


def _schemas() -> dict[str, Any]:
    node_properties = {
        "datacenter": _STRING,
        "type": _STRING,
        "id": _STRING,
        "address": {"type": "string", "description": "host:port"},
        "status": _STATUS,
        "health": _HEALTH,
        "damped": {**_BOOL, "description": "held FAILING by flap damping until its penalty decays"},
        "incarnation": _INT,
        "metadata": {"type": "object", "additionalProperties": _STRING},
    }
    node = _object(node_properties)
    datacenter = _object(
        {
            "datacenter": _STRING,
            "remote": {
                **_BOOL,
                "description": "followed from another datacenter's registry (federation): its "
                "revisions are that registry's",
            },
            "revision": {**_INT, "description": "the revision of the datacenter's last change"},
            "complete_revision": {
                **_INT,
                "description": "the revision its list is complete up to (0: a followed "
                "datacenter not reached yet)",
            },
            "stale": {**_BOOL, "description": "the last list known: its registry is out of reach"},
            "age_seconds": {**_NUMBER, "description": "since its registry last spoke"},
            "nodes": {"type": "array", "items": _ref("Node")},
        }
    )
    about = {
        "type": ["string", "null"],
        "description": "the followed datacenter this is about, in its registry's revisions; "
        "null: this frontend's etcd",
    }
    listing = {
        "revision": {**_INT, "description": "the frontend's view's revision (GetNodes')"},
        "stale": _BOOL,
        "age_seconds": _NUMBER,
        "datacenters": {"type": "array", "items": _ref("DatacenterNodes")},
    }
    return {
        "Node": node,
        "DatacenterNodes": datacenter,
        "NodeList": _object(
            {
                "index": {
                    **_INDEX,
                    "description": "the revision of the scope's last change (never 0): send it "
                    "back as `index` to block until the next one; with followed datacenters in "
                    "the scope a vector, `812,dc2=455`, each part in its registry's revisions",
                },
                **listing,
            }
        ),
        "NodeAnswer": _object(
            {"revision": _INT, "stale": _BOOL, "age_seconds": _NUMBER, "node": _ref("Node")}
        ),
        "Snapshot": _object(
            {
                **listing,
                "datacenter": about,
                "resync": _BOOL,
                "resync_reason": {
                    "type": ["string", "null"],
                    "enum": [
                        "COMPACTED",
                        "UNKNOWN_REVISION",
                        "SLOW_CONSUMER",
                        "PUSH_RESUMED",
                        "UNCONFIRMED",
                        None,
                    ],
                },
            },
            description="data of `event: snapshot` (id: its revision)",
        ),
        "Delta": _object(
            {
                "revision": _INT,
                "datacenter": about,
                "relisted": _BOOL,
                "events": {"type": "array", "items": _ref("NodeEvent"), "minItems": 1},
            },
            description="data of `event: delta` (id: its revision)",
        ),
        "NodeEvent": _object(
            {
                "type": {"type": "string", "enum": ["ADDED", "UPDATED", "REMOVED"]},
                "node": _ref("Node"),
                "reason": {
                    "type": ["string", "null"],
                    "enum": [
                        "DEREGISTERED",
                        "EXPIRED",
                        "EVICTED",
                        "UNHEALTHY",
                        "UNSPECIFIED",
                        None,
                    ],
                    "description": "why a REMOVED node left (UNHEALTHY: still a member, no "
                    "longer healthy; healthy=true streams only); null for the others",
                },
            }
        ),
        "Progress": _object(
            {"revision": _INT, "datacenter": about, "stale": _BOOL, "age_seconds": _NUMBER},
            description="data of `event: progress`, the heartbeat of an idle stream (id: the "
            "revision up to which nothing in the scope changed)",
        ),
        "Error": _object(
            {
                "error": _object(
                    {
                        "code": {"type": "string", "description": "the gRPC status code's name"},
                        "message": _STRING,
                    }
                )
            }
        ),
        "AuditTrail": _object(
            {
                "node": _STRING,
                "entries": {
                    "type": "array",
                    "items": _object(
                        {
                            "revision": _INT,
                            "time": _NUMBER,
                            "cause": _STRING,
                            "incarnation": _INT,
                            "frontend": _STRING,
                            "detail": _STRING,
                            "operator": _NULLABLE_STRING,
                        }
                    ),
                },
            }
        ),
        "Suspects": _object(
            {
                "self_preservation": _BOOL,
                "datacenters": {
                    "type": "array",
                    "items": _object(
                        {
                            "datacenter": _STRING,
                            "members": _INT,
                            "suspects": _INT,
                            "self_preservation": _BOOL,
                        }
                    ),
                },
                "suspects": {
                    "type": "array",
                    "items": _object(
                        {
                            **node_properties,
                            "suspect_since": _NUMBER,
                            "removed_at_the_latest": _NUMBER,
                        }
                    ),
                },
            }
        ),
        "Convergence": {
            "type": "object",
            "required": ["revision", "frontends", "unreachable", "subscribers", "not_converged"],
            "properties": {
                "revision": _INT,
                "asked_by": _STRING,
                "frontends": {"type": "array", "items": _STRING},
                "unreachable": {"type": "array", "items": {"type": "object"}},
                "subscribers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "frontend", "peer", "converged"],
                        "properties": {
                            "id": _STRING,
                            "frontend": _STRING,
                            "peer": _STRING,
                            "converged": _BOOL,
                            "acked_revision": _INT,
                            "sent_revision": _INT,
                        },
                    },
                },
                "not_converged": _INT,
                "oldest_pending_seconds": _NUMBER,
            },
        },
        "Readiness": _object(
            {
                "ready": _BOOL,
                "degraded": _BOOL,
                "reason": _STRING,
                "store_connected": _BOOL,
                "cache_age_seconds": _NUMBER,
            }
        ),
    }


def _parameter(name: str, where: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": where, "schema": schema, "description": text}


_SCOPE = [
    _parameter(
        name,
        "query",
        {"type": "array", "items": _STRING},
        f"repeatable, or comma-separated; none: every {name}",
    )
    | {"style": "form", "explode": True}
    for name in ("datacenter", "type")
] + [
    _parameter(
        "selector",
        "query",
        _STRING,
        "a label selector on the nodes' metadata, Kubernetes syntax: zone=a, zone!=a, "
        "version in (2,3), version notin (1), canary, !canary; a comma means AND",
    ),
    _parameter(
        "healthy",
        "query",
        {"type": "boolean", "default": False},
        "only healthy nodes (UP, no failing check); in a stream, a node that stops being "
        "healthy is REMOVED with reason UNHEALTHY, and ADDED when it is back",
    ),
]
_CONSISTENCY = _parameter(
    "consistency",
    "query",
    {"type": "string", "enum": ["linearizable", "cached"], "default": "linearizable"},
    "linearizable: every write completed before the call is in the answer; cached: this "
    "frontend's view at once (see `age_seconds`)",
)
_NODE_PATH = [
    _parameter(name, "path", _NAME, f"the node's {name}") | {"required": True}
    for name in ("datacenter", "type", "id")
]


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "content": {_JSON: {"schema": _ref("Error")}}}


def _ok(schema: str, text: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": text, "content": {_JSON: {"schema": _ref(schema)}}}
    if headers:
        answer["headers"] = headers
    return answer


_CHALLENGE = {
    "WWW-Authenticate": {
        "schema": _STRING,
        "description": 'Bearer realm="node-registry" (RFC 6750; with error="invalid_token", '
        'error_description="unknown token" for a token that is not one of the registry\'s)',
    }
}
# What any HTTP port answers before a request reaches a path (web/connection_guard.py).
_CONNECTION_REFUSALS = {
    "408": _error("the request's line and headers took longer than http_header_timeout_seconds"),
    "429": _error("this peer has http_max_connections_per_peer connections open"),
    "431": _error(
        "the request's line and headers exceed http_max_header_bytes (one header "
        "max_metadata_bytes)"
    ),
}
_REFUSALS = {
    "400": _error("a malformed or unknown parameter; the message names it"),
    "401": _error(
        "no token ('no token: ...'), a token the registry does not know ('unknown token: "
        "...'), or no client certificate where mTLS is on"
    )
    | {"headers": _CHALLENGE},
    "403": _error(
        "the token lacks the scope, or covers only some of the datacenters and types asked for; "
        "the message names the scope needed (token_scopes: register:dc1/data, watch:*/session)"
    ),
}
_INDEX = {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]}
_REVISION_DIGITS = "[0-9]{1,19}"  # ASCII digits only, an int64
_EVENT_ID = {
    "type": "string",
    "pattern": rf"^{_REVISION_DIGITS}(,[a-z0-9][a-z0-9-]*={_REVISION_DIGITS})*$",
}
_REVISION_HEADER = {"X-Registry-Revision": {"schema": _INT, "description": "the list's revision"}}
_OVERLOADED = "the frontend is overloaded (its event loop lags) and serves renewals first"
_RETRY_AFTER = {
    "Retry-After": {"schema": _INT, "description": "seconds after which to retry (when overloaded)"}
}


def _overloaded(also: str = "") -> dict[str, Any]:
    """429 of a node read: the frontend sheds reads to keep renewals on time (D72)."""
    return _error(f"{also}, or {_OVERLOADED}" if also else _OVERLOADED) | {"headers": _RETRY_AFTER}


def _get(
    summary: str,
    answers: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
    scope: str | None = "watch",
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**_CONNECTION_REFUSALS}}
    if parameters:
        operation["parameters"] = parameters
    if scope is None:
        operation["security"] = []
    else:
        operation["security"] = [{"bearer": [scope]}]
        operation["responses"] |= _REFUSALS
    operation["responses"] |= answers
    return {"get": operation}


def _paths() -> dict[str, Any]:
    unavailable = _error("etcd out of reach for a linearizable read, or the frontend stopping")
    return {
        "/v1/nodes": _get(
            "The nodes of a scope per datacenter (GetNodes); with index and wait, a blocking "
            "read that answers once the scope changed after index",
            {
                "200": _ok(
                    "NodeList",
                    "the list",
                    {
                        "X-Registry-Index": {"schema": _INDEX},
                        **_REVISION_HEADER,
                    },
                ),
                "429": _overloaded("this peer has http_max_connections_per_peer connections open"),
                "503": unavailable,
            },
            [
                *_SCOPE,
                _CONSISTENCY,
                _parameter("index", "query", _EVENT_ID, "block until the scope changes after this"),
                _parameter(
                    "wait",
                    "query",
                    {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(ms|s|m)?$"},
                    "longest wait, e.g. 30s, 500ms, 2m (cut to http_max_wait_seconds); "
                    "absent or zero: http_max_wait_seconds (a zero wait is Consul's default "
                    "wait too: a blocking read never answers at once unless the scope "
                    "changed; leave out index for that)",
                ),
            ],
        ),
        "/v1/nodes/{datacenter}/{type}/{id}": _get(
            "One member",
            {
                "200": _ok("NodeAnswer", "the node", _REVISION_HEADER),
                "404": _error("not a member"),
                "429": _overloaded("this peer has http_max_connections_per_peer connections open"),
                "503": unavailable,
            },
            [*_NODE_PATH, _CONSISTENCY],
        ),
        "/v1/watch": _get(
            "WatchNodes as Server-Sent Events: `event: snapshot`, then `event: delta` per "
            "revision, `event: progress` while idle, each with `id:` where the stream stands "
            "(the revision; with datacenter_revisions, a vector) and `data:` one line of JSON "
            "(Snapshot, Delta, Progress); `event: error` (Error) ends it. Last-Event-ID "
            "resumes exactly after it, or sends a snapshot flagged resync",
            {
                "200": {
                    "description": "the event stream",
                    "content": {"text/event-stream": {"schema": _STRING}},
                },
                "429": _overloaded(
                    "this peer has max_streams_per_peer streams open (or "
                    "http_max_connections_per_peer connections)"
                ),
                "503": unavailable,
            },
            [
                *_SCOPE,
                _parameter(
                    "datacenter_revisions",
                    "query",
                    {"type": "boolean", "default": False},
                    "stream followed datacenters too, each in its own registry's revisions; "
                    "event ids are then vectors: 812,dc2=455",
                ),
                _parameter("last_event_id", "query", _EVENT_ID, "resume after this event id"),
                _parameter("Last-Event-ID", "header", _EVENT_ID, "resume after it (wins)"),
            ],
        ),
        "/v1/audit/{datacenter}/{type}/{id}": _get(
            "The node's recorded transitions and their causes, oldest first",
            {"200": _ok("AuditTrail", "the trail (empty when none is kept)")},
            _NODE_PATH,
            scope="admin:read",
        ),
        "/v1/cluster/suspects": _get(
            "Self-preservation: members held as SUSPECT, per datacenter whether it holds any",
            {"200": _ok("Suspects", "the suspects")},
            scope="admin:read",
        ),
        "/v1/cluster/convergence": _get(
            "Every frontend's subscribers against a revision",
            {"200": _ok("Convergence", "the subscribers")},
            [_parameter("revision", "query", _INT, "default: the answering frontend's latest")],
            scope="admin:read",
        ),
        "/v1/openapi.json": _get(
            "This document",
            {"200": {"description": "OpenAPI 3.1", "content": {_JSON: {"schema": {}}}}},
            scope=None,
        ),
        "/readyz": _get(
            "Whether this frontend can serve (200, also when degraded) or not (503)",
            {"200": _ok("Readiness", "ready"), "503": _ok("Readiness", "not ready")},
            scope=None,
        ),
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the HTTP API (served at /v1/openapi.json)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "node-registry HTTP API",
            "version": __version__,
            "description": "Cluster membership over HTTP/JSON: the gRPC service's reads, "
            "blocking reads as Consul's, and the watch as Server-Sent Events. Errors are "
            '`{"error": {"code", "message"}}` with the gRPC status code\'s name.',
        },
        "paths": {**_paths(), **operator_paths()},
        "components": {
            "schemas": {**_schemas(), **operator_schemas()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token of auth_tokens_file (scopes: watch; admin:read for "
                    "the audit and cluster views; admin:write for the operator's actions), or "
                    "the admin token; needed only when the registry has tokens, but for the "
                    "operator's actions, which always need one (or mTLS)",
                }
            },
        },
    }
