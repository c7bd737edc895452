"""What another admin port gets of a caller (web/auth.py): its token and the identity checked
here, for a peer frontend's cluster-wide views and for a worker behind its supervisor."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from registry_service.security.bearer_tokens import TokenTable
from registry_service.web.auth import OPERATOR_HEADER, HttpAuth

HEADERS = {
    "Authorization": "Bearer s3cret",
    "Content-Type": "application/json",
    "X-Request-Id": "r-1",
    OPERATOR_HEADER: "forged",
}


def test_a_peer_gets_the_token_and_the_identity_checked_here_never_a_forged_one():
    auth = HttpAuth(TokenTable({}), admin_token="s3cret")
    request = make_mocked_request("GET", "/admin/convergence", headers=HEADERS)
    assert auth.forwarded_headers(request) == {
        "Authorization": "Bearer s3cret",
        OPERATOR_HEADER: "token:admin_token",
    }


def test_a_worker_also_gets_the_headers_a_forwarded_request_needs():
    auth = HttpAuth(TokenTable({}), admin_token="s3cret")
    request = make_mocked_request("POST", "/admin/push", headers=HEADERS)
    names = ("Authorization", "Content-Type", "X-Request-Id", "X-Absent")
    assert auth.forwarded_headers(request, names) == {
        "Authorization": "Bearer s3cret",
        "Content-Type": "application/json",
        "X-Request-Id": "r-1",
        OPERATOR_HEADER: "token:admin_token",
    }
