"""Authentication (401) and key scope (403), in the Anthropic error shape."""

from __future__ import annotations

import json
import time

import anthropic
import pytest

from conftest import http

META = {"env": "prod", "team": "engineering"}
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def call(gateway, key: str | None, meta: dict = META, model: str = "claude-sonnet-4-5"):
    c = anthropic.Anthropic(base_url=gateway.url, auth_token=key or "", max_retries=0,
                            default_headers={"x-portkey-metadata": json.dumps(meta)})
    return c.messages.create(model=model, max_tokens=16, messages=[{"role": "user", "content": "hi"}])


def assert_error(exc, status: int, kind: str, needle: str):
    assert exc.status_code == status
    assert exc.body["type"] == "error"
    assert exc.body["error"]["type"] == kind
    assert needle in exc.body["error"]["message"], exc.body


def test_missing_key(gateway):
    status, _, body = http("POST", f"{gateway.url}/v1/messages", BODY, {"x-portkey-metadata": json.dumps(META)})
    assert status == 401
    assert body["error"]["type"] == "authentication_error" and "missing API key" in body["error"]["message"]


def test_unknown_key(gateway):
    with pytest.raises(anthropic.AuthenticationError) as e:
        call(gateway, "tg-not-a-real-key")
    assert_error(e.value, 401, "authentication_error", "invalid API key")


def test_revoked_key(gateway):
    rec = gateway.key_record("open", name="to-revoke")
    assert call(gateway, rec["secret"]).content
    status, _, body = gateway.admin("POST", f"/keys/{rec['id']}/revoke")
    assert status == 200 and body["revoked_at"]
    with pytest.raises(anthropic.AuthenticationError) as e:
        call(gateway, rec["secret"])
    assert_error(e.value, 401, "authentication_error", "revoked")


def test_expired_key(gateway):
    key = gateway.create_key("open", name="short-lived", expires_in_s=1)
    assert call(gateway, key).content
    time.sleep(1.2)
    with pytest.raises(anthropic.AuthenticationError) as e:
        call(gateway, key)
    assert_error(e.value, 401, "authentication_error", "expired")


def test_key_bound_to_team_refuses_other_team(gateway):
    key = gateway.create_key("open", team="engineering", user="dev@acme.com")
    assert call(gateway, key, meta={"team": "engineering"}).content
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        call(gateway, key, meta={"team": "finance"})
    assert_error(e.value, 403, "permission_error", "bound to team 'engineering'")
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        call(gateway, key, meta={"user": "someone@else.com"})
    assert_error(e.value, 403, "permission_error", "user 'dev@acme.com'")


def test_key_of_one_tenant_cannot_claim_another(gateway):
    key = gateway.create_key("open")
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        call(gateway, key, meta={"tenant": "acme"})
    assert_error(e.value, 403, "permission_error", "tenant 'open'")


def test_key_model_allow_list(gateway):
    key = gateway.create_key("open", models=["claude-haiku-*"])
    assert call(gateway, key, model="claude-haiku-4-5").content
    with pytest.raises(anthropic.PermissionDeniedError) as e:
        call(gateway, key, model="claude-opus-4-1")
    assert_error(e.value, 403, "permission_error", "may not use model 'claude-opus-4-1'")


def test_admin_api_needs_the_admin_token(gateway):
    status, _, body = http("GET", f"{gateway.url}/admin/v1/tenants")
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, _, body = http("GET", f"{gateway.url}/admin/v1/tenants", headers={"authorization": "Bearer wrong"})
    assert status == 401
