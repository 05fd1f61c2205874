"""Admin roles: the platform admin token manages everything; a tenant admin token manages
only its own tenant and is refused (403) on every admin route outside it."""

from __future__ import annotations

import pytest

from conftest import Gateway, http


@pytest.fixture(scope="module")
def gw(tmp_path_factory, mock_a):
    tmp = tmp_path_factory.mktemp("roles")
    g = Gateway(tmp, f"""
listen = "127.0.0.1:0"
data_dir = "{tmp / 'data'}"
default_provider = "mock-a"

[logs]
flush_ms = 50

[[providers]]
id = "mock-a"
kind = "anthropic"
base_url = "{mock_a.url}"

[[tenants]]
id = "acme"

[[tenants]]
id = "globex"
""")
    yield g
    g.stop()


def as_token(gw: Gateway, token: str, method: str, path: str, body=None):
    return http(method, f"{gw.url}/admin/v1{path}", body, {"authorization": f"Bearer {token}"})


def message(gw: Gateway, tenant: str, key: str) -> str:
    status, headers, body = http("POST", f"{gw.url}/v1/messages",
                                 {"model": "claude-sonnet-4-5", "max_tokens": 8,
                                  "messages": [{"role": "user", "content": "hi"}]},
                                 {"authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"})
    assert status == 200, body
    return headers["request-id"]


def test_tenant_admin_is_confined_to_its_tenant(gw):
    status, _, tok = gw.admin("POST", "/tenants/acme/admin-tokens", {"name": "acme ops"})
    assert status == 201, tok
    token = tok["token"]
    acme_key = gw.key_record("acme", name="acme-app")
    globex_key = gw.key_record("globex", name="globex-app")
    acme_rid = message(gw, "acme", acme_key["secret"])
    globex_rid = message(gw, "globex", globex_key["secret"])
    gw.wait_log(acme_rid)
    gw.wait_log(globex_rid)
    router = {"plugins": [{"name": "model-router", "config": {"default": {"targets": [{"provider": "mock-a"}]}}}]}
    assert gw.admin("PUT", "/tenants/globex/bundle", router)[0] == 201
    assert gw.admin("PUT", "/bundle", {"plugins": []})[0] == 201

    # Its own tenant: allowed.
    allowed = [
        ("GET", "/tenants/acme", None),
        ("POST", "/tenants/acme/keys", {"name": "made-by-tenant-admin"}),
        ("GET", "/tenants/acme/keys", None),
        ("GET", f"/keys/{acme_key['id']}", None),
        ("PUT", "/tenants/acme/bundle", router),
        ("GET", "/tenants/acme/bundle", None),
        ("GET", "/tenants/acme/bundle/versions", None),
        ("GET", "/tenants/acme/bundle/versions/1", None),
        ("GET", "/tenants/acme/bundle/diff?from=1&to=1", None),
        ("POST", "/tenants/acme/bundle/rollback", {"version": 1}),
        ("POST", "/tenants/acme/bundle/replay", {"bundle": {"plugins": []}, "since": "1h"}),
        ("GET", "/keys", None),
        ("GET", "/logs", None),
        ("GET", "/logs?tenant=acme", None),
        ("GET", "/usage?by=team", None),
        ("GET", "/budgets", None),
        ("GET", "/alerts", None),
        ("GET", "/audit", None),
        ("GET", "/whoami", None),
        ("GET", f"/logs/{acme_rid}", None),
        ("GET", "/logs/export?format=csv", None),
        ("GET", "/traces", None),
        ("GET", f"/traces/{acme_rid}", None),
        ("GET", "/analytics?by=team", None),
    ]
    for method, path, body in allowed:
        status, _, resp = as_token(gw, token, method, path, body)
        assert status < 300, (method, path, resp)

    # Listings are pinned to its tenant.
    _, _, keys = as_token(gw, token, "GET", "/keys")
    assert keys["data"] and {k["tenant_id"] for k in keys["data"]} == {"acme"}
    _, _, logs = as_token(gw, token, "GET", "/logs")
    ids = {r["request_id"] for r in logs["data"]}
    assert acme_rid in ids and globex_rid not in ids
    _, _, me = as_token(gw, token, "GET", "/whoami")
    assert me["role"] == "tenant" and me["tenant"] == "acme"
    _, _, exported = as_token(gw, token, "GET", "/logs/export?format=csv")
    assert acme_rid in exported and globex_rid not in exported
    _, _, traces = as_token(gw, token, "GET", "/traces")
    assert {t["tenant_id"] for t in traces["data"]} == {"acme"}
    # Another tenant's request or trace is simply not found within its tenant.
    assert as_token(gw, token, "GET", f"/logs/{globex_rid}")[0] == 404
    assert as_token(gw, token, "GET", f"/traces/{globex_rid}")[0] == 404
    _, _, audit = as_token(gw, token, "GET", "/audit")
    assert audit["data"] and all(e["tenant"] == "acme" for e in audit["data"])
    assert audit["data"][0]["actor"].startswith("tenant-admin:acme:")

    # Everything else: refused.
    refused = [
        ("GET", "/tenants", None),
        ("POST", "/tenants", {"id": "evil"}),
        ("GET", "/tenants/globex", None),
        ("GET", "/tenants/globex/keys", None),
        ("POST", "/tenants/globex/keys", {"name": "x"}),
        ("GET", f"/keys/{globex_key['id']}", None),
        ("DELETE", f"/keys/{globex_key['id']}", None),
        ("POST", f"/keys/{globex_key['id']}/revoke", None),
        ("GET", "/keys/key_doesnotexist", None),
        ("GET", "/keys?tenant=globex", None),
        ("GET", "/logs?tenant=globex", None),
        ("GET", "/logs?tenant=acme&tenant=globex", None),
        ("GET", f"/logs?request_id={globex_rid}&tenant=globex", None),
        ("GET", "/usage?tenant=globex", None),
        ("GET", "/budgets?tenant=globex", None),
        ("GET", "/alerts?tenant=globex", None),
        ("GET", "/audit?tenant=globex", None),
        ("GET", "/audit?platform=1", None),
        ("GET", f"/logs/{globex_rid}?tenant=globex", None),
        ("GET", "/logs/export?tenant=globex", None),
        ("GET", "/traces?tenant=globex", None),
        ("GET", f"/traces/{globex_rid}?tenant=globex", None),
        ("GET", "/analytics?tenant=globex", None),
        ("PUT", "/tenants/globex/bundle", router),
        ("GET", "/tenants/globex/bundle", None),
        ("GET", "/tenants/globex/bundle/versions", None),
        ("GET", "/tenants/globex/bundle/versions/1", None),
        ("GET", "/tenants/globex/bundle/diff?from=1&to=1", None),
        ("POST", "/tenants/globex/bundle/rollback", {"version": 1}),
        ("POST", "/tenants/globex/bundle/replay", {"bundle": {"plugins": []}}),
        ("PUT", "/bundle", {"plugins": []}),
        ("GET", "/bundle", None),
        ("GET", "/bundle/versions", None),
        ("GET", "/bundle/versions/1", None),
        ("GET", "/bundle/diff?from=1&to=1", None),
        ("POST", "/bundle/rollback", {"version": 1}),
        ("POST", "/tenants/acme/admin-tokens", {}),
        ("POST", "/tenants/globex/admin-tokens", {}),
        ("POST", f"/admin-tokens/{tok['id']}/revoke", None),
    ]
    for method, path, body in refused:
        status, _, resp = as_token(gw, token, method, path, body)
        assert status == 403, (method, path, status, resp)
        assert resp["error"]["type"] == "permission_error"
    # /metrics names every tenant: the platform token only.
    status, _, _ = http("GET", f"{gw.url}/metrics", headers={"authorization": f"Bearer {token}"})
    assert status == 401
    # Nothing of globex's changed.
    status, _, g = gw.admin("GET", f"/keys/{globex_key['id']}")
    assert g["revoked_at"] is None
    _, _, versions = gw.admin("GET", "/tenants/globex/bundle/versions")
    assert len(versions["data"]) == 1

    # A revoked tenant token stops working at once; an unknown one never did.
    status, _, revoked = gw.admin("POST", f"/admin-tokens/{tok['id']}/revoke")
    assert status == 200 and revoked["revoked_at"]
    assert as_token(gw, token, "GET", "/tenants/acme")[0] == 401
    assert as_token(gw, "tgt-not-a-token", "GET", "/tenants/acme")[0] == 401
