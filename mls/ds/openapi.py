"""The OpenAPI 3.1 description of the delivery service's HTTP API (served at /openapi.json).

Written next to the routes it describes; a test checks that both list the same operations.
Byte strings are base64url without padding (RFC 4648 §5) everywhere.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_spec"]

_B64 = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "description": "base64url, no padding"}
_UINT = {"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def _list(item: dict[str, Any], lo: int, hi: int) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": lo, "maxItems": hi}


_ERROR = _obj(["error", "message"], error={"type": "string"}, message={"type": "string"})
_ENTRY = _obj(
    ["seq", "kind", "group_id", "group_seq", "epoch", "data"],
    seq=_UINT,
    kind={"enum": ["commit", "proposal", "application", "welcome"]},
    group_id=_B64,
    group_seq=_UINT,
    epoch=_UINT,
    data=_B64,
)
_GROUP_ID = {"name": "group_id", "in": "path", "required": True, "schema": _B64}


def _op(
    summary: str,
    ok: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    auth: bool = True,
    status: str = "200",
    params: list[dict[str, Any]] | None = None,
    errors: tuple[str, ...] = ("400", "401", "403", "404", "409", "413", "422", "429"),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            status: {"description": "OK", "content": {"application/json": {"schema": ok}}},
            **{
                e: {"description": "refused", "content": {"application/json": {"schema": _ERROR}}}
                for e in errors
            },
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if params:
        op["parameters"] = params
    op["security"] = [{"bearer": []}] if auth else []
    return op


def openapi_spec() -> dict[str, Any]:
    group = "/v1/groups/{group_id}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mls delivery service",
            "version": "1",
            "description": "An untrusted MLS delivery service (RFC 9420 §14, RFC 9750 §5). "
            "Prose: docs/ds.md. WebSockets: GET /v1/ws (inbox push) and "
            "GET /v1/groups/{group_id}/call (SFrame relay).",
        },
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/health": {
                "get": _op("Liveness and database kind", _obj(["status"]), auth=False, errors=())
            },
            "/metrics": {
                "get": _op(
                    "Counters of accepted and refused requests",
                    _obj(["accepted", "refused"]),
                    auth=False,
                    errors=(),
                )
            },
            "/v1/clients": {
                "post": _op(
                    "Register an identity and its signature key",
                    _obj(["identity"], identity=_B64),
                    body=_obj(
                        ["identity", "signature_key", "cipher_suite", "proof"],
                        identity=_B64,
                        signature_key=_B64,
                        cipher_suite={"type": "integer", "minimum": 1, "maximum": 65535},
                        proof=_B64,
                    ),
                    auth=False,
                    status="201",
                )
            },
            "/v1/auth/challenge": {
                "post": _op(
                    "A single-use challenge to sign",
                    _obj(["challenge", "expires_in"], challenge=_B64, expires_in=_UINT),
                    body=_obj(["identity"], identity=_B64),
                    auth=False,
                )
            },
            "/v1/auth/token": {
                "post": _op(
                    "Trade a signed challenge for a bearer token",
                    _obj(["token", "expires_at"], token=_B64, expires_at=_UINT),
                    body=_obj(
                        ["identity", "challenge", "signature"],
                        identity=_B64,
                        challenge=_B64,
                        signature=_B64,
                    ),
                    auth=False,
                )
            },
            "/v1/key_packages": {
                "post": _op(
                    "Publish KeyPackages (MLSMessage)",
                    _obj(["stored"], stored=_UINT),
                    body=_obj(["key_packages"], key_packages=_list(_B64, 1, 100)),
                    status="201",
                ),
                "get": _op(
                    "How many of my KeyPackages are left",
                    _obj(["available", "last_resort"], available=_UINT, last_resort=_UINT),
                ),
            },
            "/v1/key_packages/claim": {
                "post": _op(
                    "Claim one KeyPackage of each identity (all or none)",
                    _obj(
                        ["key_packages"],
                        key_packages=_list(
                            _obj(["identity", "key_package"], identity=_B64, key_package=_B64),
                            1,
                            100,
                        ),
                    ),
                    body=_obj(["identities"], identities=_list(_B64, 1, 100)),
                )
            },
            "/v1/groups": {
                "post": _op(
                    "Register a group; its creator is the roster",
                    _obj(["group_id", "epoch"], group_id=_B64, epoch=_UINT),
                    body=_obj(["group_id"], group_id=_B64, epoch=_UINT),
                    status="201",
                )
            },
            group: {
                "get": _op(
                    "Epoch, last group sequence number and roster (members only)",
                    _obj(
                        ["epoch", "group_seq", "members"],
                        epoch=_UINT,
                        group_seq=_UINT,
                        members=_list(_B64, 0, 10_000),
                    ),
                    params=[_GROUP_ID],
                )
            },
            group + "/commit": {
                "post": _op(
                    "Post a commit: the first one of an epoch wins (409 epoch_conflict otherwise)",
                    _obj(["epoch", "group_seq"], epoch=_UINT, group_seq=_UINT),
                    body=_obj(
                        ["commit"],
                        commit=_B64,
                        welcome=_B64,
                        group_info=_B64,
                        added=_list(_B64, 0, 100),
                        removed=_list(_B64, 0, 100),
                    ),
                    params=[_GROUP_ID],
                )
            },
            group + "/messages": {
                "post": _op(
                    "Post a proposal or application message",
                    _obj(["group_seq", "epoch"], group_seq=_UINT, epoch=_UINT),
                    body=_obj(["message"], message=_B64),
                    params=[_GROUP_ID],
                )
            },
            group + "/group_info": {
                "put": _op(
                    "Publish the current epoch's GroupInfo (members only)",
                    _obj(["epoch"], epoch=_UINT),
                    body=_obj(["group_info"], group_info=_B64),
                    params=[_GROUP_ID],
                ),
                "get": _op(
                    "The latest GroupInfo, for external joins",
                    _obj(
                        ["group_info", "epoch", "group_epoch", "self_removes"],
                        group_info=_B64,
                        epoch=_UINT,
                        group_epoch=_UINT,
                        self_removes={"type": "array", "items": _B64},
                    ),
                    params=[_GROUP_ID],
                ),
            },
            "/v1/inbox": {
                "get": _op(
                    "Inbox entries after a cursor",
                    _obj(
                        ["entries", "last_seq"],
                        entries={"type": "array", "items": _ENTRY},
                        last_seq=_UINT,
                    ),
                    params=[
                        {"name": "after", "in": "query", "required": False, "schema": _UINT},
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                    ],
                )
            },
            "/v1/inbox/ack": {
                "post": _op(
                    "Acknowledge (delete) entries up to seq",
                    _obj(["acked"], acked=_UINT),
                    body=_obj(["seq"], seq=_UINT),
                )
            },
        },
    }
