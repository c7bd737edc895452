"""The OpenAPI paths and schemas of the operator's routes on the HTTP API port (/v1/cluster/
frontends, push, nodes, suspects: the admin port's handlers, for the console), and of the probes.
Part of the document web/openapi.py serves; checked against real answers the same way."""

from __future__ import annotations

from typing import Any

_REF = "#/components/schemas/"
_JSON = "application/json"
_INT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_BOOL = {"type": "boolean"}
_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]*$"}
_ACTIONS = ["maintenance", "drain", "clear", "evict", "unhold"]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(properties),
        "properties": properties,
        "additionalProperties": False,
    }


def operator_schemas() -> dict[str, Any]:
    """The schemas of the operator routes' bodies (/v1/cluster/...), for the OpenAPI document."""
    frontend = _object(
        {
            "id": _STRING,
            "self": {**_BOOL, "description": "the frontend that answered"},
            "host": _STRING,
            "pid": _INT,
            "worker": {"type": "string", "description": "index/count of its host's workers"},
            "grpc_address": _STRING,
            "admin_url": _STRING,
            "version": _STRING,
            "started_at": _NUMBER,
            "subscribers": {**_INT, "description": "its subscribers, as last announced"},
        }
    )
    return {
        "Frontends": _object(
            {"frontend": _STRING, "frontends": {"type": "array", "items": frontend}}
        ),
        "PushSwitch": {
            "type": "object",
            "required": ["enabled", "gray", "summary"],
            "properties": {
                "enabled": _BOOL,
                "gray": _object(
                    {
                        "scopes": {"type": "array", "items": _STRING},
                        "networks": {"type": "array", "items": _STRING},
                    }
                ),
                "changed_by": _NULLABLE_STRING,
                "changed_at": _NULLABLE_NUMBER,
                "summary": _STRING,
                "frontend": _STRING,
                "revision": {**_INT, "description": "a change: the revision that stored it"},
            },
            "additionalProperties": False,
        },
        "PushChange": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "enabled": _BOOL,
                "gray": {
                    "type": "object",
                    "properties": {
                        "scopes": {"type": "array", "items": _STRING},
                        "networks": {"type": "array", "items": _STRING},
                    },
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
        "StoredNode": _object(
            {
                "node": _STRING,
                "member": {"oneOf": [_ref("Node"), {"type": "null"}]},
                "live": {**_BOOL, "description": "its owner renews it"},
                "override": {
                    "oneOf": [
                        _object(
                            {
                                "status": _STRING,
                                "owner_status": _STRING,
                                "by": _STRING,
                                "at": _NUMBER,
                            }
                        ),
                        {"type": "null"},
                    ]
                },
                "held_until": _NULLABLE_NUMBER,
                "held_by": _NULLABLE_STRING,
                "revision": _INT,
            }
        ),
        "NodeActionRequest": {
            "type": "object",
            "properties": {
                "reason": {**_STRING, "description": "recorded in the audit trail"},
                "hold_seconds": {**_NUMBER, "description": "evict: refuse its id this long"},
            },
        },
        "NodeActionResult": _object(
            {
                "node": _STRING,
                "action": {"type": "string", "enum": _ACTIONS},
                "revision": _INT,
                "status": _NULLABLE_STRING,
                "operator": {**_STRING, "description": "who acted, as the audit records it"},
            }
        ),
        "SuspectsRequest": {
            "oneOf": [
                _object({"datacenter": _STRING}),
                _object(
                    {
                        "nodes": {
                            "type": "array",
                            "items": _object(
                                {"datacenter": _STRING, "type": _STRING, "id": _STRING}
                            ),
                        }
                    }
                ),
            ]
        },
        "SettleResult": _object(
            {
                "action": {"type": "string", "enum": ["confirm", "cancel"]},
                "nodes": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"revision": _INT, "error": _STRING},
                        "additionalProperties": False,
                    },
                },
            }
        ),
    }


def _answer(schema: str, text: str) -> dict[str, Any]:
    return {"description": text, "content": {_JSON: {"schema": _ref(schema)}}}


def _error(text: str) -> dict[str, Any]:
    return {"description": text, "content": {_JSON: {"schema": _ref("Error")}}}


_REFUSED = {
    "400": _error("a malformed body; the message says what to send"),
    "401": _error("no token, or no client certificate where mTLS is on"),
    "403": _error(
        "the token lacks the scope; a write on a registry without tokens (this port takes "
        "operator actions only with credentials)"
    ),
}
_CONFLICT = {
    "409": _error("not a live member, held, or changed meanwhile"),
    "503": _error("etcd unavailable"),
}
_NODE_PATH = [
    {"name": name, "in": "path", "required": True, "schema": _NAME, "description": f"its {name}"}
    for name in ("datacenter", "type", "id")
]


def _operation(summary: str, scope: str, answers: dict[str, Any], body: str = "") -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": [scope]}],
        "responses": {**_REFUSED, **answers},
    }
    if body:
        operation["requestBody"] = {
            "required": True,
            "content": {_JSON: {"schema": _ref(body)}},
        }
    return operation


def operator_paths() -> dict[str, Any]:
    """The operator routes the HTTP API port mounts for the console, for the OpenAPI document."""
    return {
        "/v1/cluster/frontends": {
            "get": _operation(
                "The announced frontends: version, subscribers, addresses",
                "admin:read",
                {"200": _answer("Frontends", "every frontend of the cluster")},
            )
        },
        "/v1/cluster/push": {
            "get": _operation(
                "The push switch as this frontend applies it",
                "admin:read",
                {"200": _answer("PushSwitch", "on or off, and its gray list")},
            ),
            "put": _operation(
                "Switches pushes on or off for every frontend (stored in etcd, audited); "
                "answers once this frontend applied it",
                "admin:write",
                {"200": _answer("PushSwitch", "the switch as stored"), **_CONFLICT},
                body="PushChange",
            ),
        },
        "/v1/cluster/nodes/{datacenter}/{type}/{id}": {
            "get": _operation(
                "One node as etcd has it: an operator's override, an eviction hold",
                "admin:read",
                {"200": _answer("StoredNode", "the record")},
            )
            | {"parameters": _NODE_PATH},
        },
        "/v1/cluster/nodes/{datacenter}/{type}/{id}/{action}": {
            "post": _operation(
                "An operator's action on a live node, audited with who did it: maintenance "
                "(OUT_OF_SERVICE), drain (DRAINING), clear, evict (with hold_seconds: its id "
                "refused that long), unhold",
                "admin:write",
                {
                    "200": _answer("NodeActionResult", "done"),
                    "404": _error("no such action"),
                    **_CONFLICT,
                },
                body="NodeActionRequest",
            )
            | {
                "parameters": [
                    *_NODE_PATH,
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": _ACTIONS},
                    },
                ]
            },
        },
        "/v1/cluster/suspects/confirm": {
            "post": _operation(
                "Removes suspects now (EVICTED): these nodes, or every suspect of a datacenter",
                "admin:write",
                {"200": _answer("SettleResult", "each node's outcome")},
                body="SuspectsRequest",
            )
        },
        "/v1/cluster/suspects/cancel": {
            "post": _operation(
                "Puts suspects back UP for one more TTL",
                "admin:write",
                {"200": _answer("SettleResult", "each node's outcome")},
                body="SuspectsRequest",
            )
        },
        "/healthz": {
            "get": {
                "summary": "Liveness: 200 while the process runs",
                "security": [],
                "responses": {
                    "200": {
                        "description": "alive",
                        "content": {"text/plain": {"schema": {"type": "string", "const": "ok\n"}}},
                    }
                },
            }
        },
    }
