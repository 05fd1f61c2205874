//! The admin permission matrix: every admin route, tried with the platform token, a
//! tenant admin token on its own tenant and on another, no token and a wrong one. A
//! route added to the admin API without a row here fails the completeness check, so
//! no route ships with an undecided permission.

use crate::support::{MockUpstream, TestGateway, ask, request_id};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use tollgate::mock::Flavor;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// The platform, and a tenant admin on its own tenant's data.
    OwnTenant,
    /// The platform only.
    Platform,
}

/// One admin call: method, path (placeholders filled in by `fill`), body, and who may
/// make it. `{t}` is the tenant-admin's own tenant when the row is `OwnTenant`.
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    access: Access,
}

fn row(method: &'static str, path: &'static str, body: Option<Value>, access: Access) -> Row {
    Row {
        method,
        path,
        body,
        access,
    }
}

fn matrix() -> Vec<Row> {
    use Access::{OwnTenant as Own, Platform as Plat};
    let router = json!({"plugins": [{"name": "model-router", "config": {"default": {"targets": [{"provider": "up"}]}}}]});
    vec![
        row("GET", "/whoami", None, Own),
        row("GET", "/tenants/{t}", None, Own),
        row(
            "POST",
            "/tenants/{t}/keys",
            Some(json!({"name": "made-here"})),
            Own,
        ),
        row("GET", "/tenants/{t}/keys", None, Own),
        row("GET", "/keys/{key}", None, Own),
        row("GET", "/keys", None, Own),
        row("GET", "/logs", None, Own),
        row("GET", "/logs/{rid}", None, Own),
        row("GET", "/logs/export?format=csv", None, Own),
        row("GET", "/traces", None, Own),
        row("GET", "/traces/{rid}", None, Own),
        row("GET", "/analytics?by=team", None, Own),
        row("GET", "/usage?by=team", None, Own),
        row("GET", "/budgets", None, Own),
        row("GET", "/alerts", None, Own),
        row("GET", "/audit", None, Own),
        row("PUT", "/tenants/{t}/bundle", Some(router.clone()), Own),
        row("GET", "/tenants/{t}/bundle", None, Own),
        row("GET", "/tenants/{t}/bundle/versions", None, Own),
        row("GET", "/tenants/{t}/bundle/versions/1", None, Own),
        row("GET", "/tenants/{t}/bundle/diff?from=1&to=1", None, Own),
        row(
            "POST",
            "/tenants/{t}/bundle/rollback",
            Some(json!({"version": 1})),
            Own,
        ),
        row(
            "POST",
            "/tenants/{t}/bundle/replay",
            Some(json!({"bundle": {"plugins": []}, "since": "1h"})),
            Own,
        ),
        row("GET", "/tenants", None, Plat),
        row(
            "POST",
            "/tenants",
            Some(json!({"id": "made-by-matrix"})),
            Plat,
        ),
        row("PUT", "/bundle", Some(json!({"plugins": []})), Plat),
        row("GET", "/bundle", None, Plat),
        row("GET", "/bundle/versions", None, Plat),
        row("GET", "/bundle/versions/1", None, Plat),
        row("GET", "/bundle/diff?from=1&to=1", None, Plat),
        row(
            "POST",
            "/bundle/rollback",
            Some(json!({"version": 1})),
            Plat,
        ),
        row(
            "POST",
            "/tenants/{t}/admin-tokens",
            Some(json!({"name": "x"})),
            Plat,
        ),
        // Last: these revoke what the other rows use.
        row("POST", "/keys/{key}/revoke", None, Own),
        row("DELETE", "/keys/{key}", None, Own),
        row("POST", "/admin-tokens/{tok}/revoke", None, Plat),
    ]
}

/// The ids one tenant's rows are filled in with.
struct Ids {
    tenant: &'static str,
    key: String,
    rid: String,
}

fn fill(path: &str, ids: &Ids, tok: &str) -> String {
    path.replace("{t}", ids.tenant)
        .replace("{key}", &ids.key)
        .replace("{rid}", &ids.rid)
        .replace("{tok}", tok)
}

/// Every `(method, path template)` the admin router registers, read from its source.
fn registered_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/admin");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("admin sources") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).unwrap_or_default();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix(".route(\"") else {
                continue;
            };
            let Some((path, handlers)) = rest.split_once('"') else {
                continue;
            };
            if path == "/metrics" {
                continue;
            }
            for method in ["get", "post", "put", "delete"] {
                if handlers.contains(&format!("{method}(")) {
                    out.insert((method.to_uppercase(), path.to_string()));
                }
            }
        }
    }
    out
}

/// Whether a concrete row path is an instance of a route template.
fn instance_of(template: &str, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a == b || a.starts_with('{'))
}

#[test]
fn every_admin_route_has_a_row_in_the_matrix() {
    let rows = matrix();
    let routes = registered_routes();
    assert!(routes.len() >= 30, "the route scan found only {routes:?}");
    let missing: Vec<String> = routes
        .into_iter()
        .filter(|(m, t)| !rows.iter().any(|r| r.method == m && instance_of(t, r.path)))
        .map(|(m, t)| format!("{m} {t}"))
        .collect();
    assert!(
        missing.is_empty(),
        "admin routes with no permission row: {missing:?}"
    );
}

async fn seed(gw: &TestGateway, tenant: &'static str) -> Ids {
    let (status, key) = gw
        .admin(
            "POST",
            &format!("/tenants/{tenant}/keys"),
            Some(json!({"name": "app"})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["secret"].as_str().expect("secret");
    let resp = gw.messages(secret, ask("hello")).await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    gw.wait_log(&rid).await;
    let (status, _) = gw
        .admin(
            "PUT",
            &format!("/tenants/{tenant}/bundle"),
            Some(json!({"plugins": []})),
        )
        .await;
    assert_eq!(status, 201);
    Ids {
        tenant,
        key: key["id"].as_str().expect("key id").to_string(),
        rid,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_caller_gets_exactly_what_the_matrix_says() {
    let up = MockUpstream::start("up", Flavor::Anthropic, None).await;
    let gw = TestGateway::start(
        "roles",
        &format!(
            "default_provider = \"up\"\n[[providers]]\nid = \"up\"\nkind = \"anthropic\"\nbase_url = \"{}\"\n\n[[tenants]]\nid = \"acme\"\n\n[[tenants]]\nid = \"globex\"\n",
            up.url
        ),
    )
    .await;
    assert_eq!(
        gw.admin("PUT", "/bundle", Some(json!({"plugins": []})))
            .await
            .0,
        201
    );
    let acme = seed(&gw, "acme").await;
    let globex = seed(&gw, "globex").await;
    let (status, tok) = gw
        .admin(
            "POST",
            "/tenants/acme/admin-tokens",
            Some(json!({"name": "acme ops"})),
        )
        .await;
    assert_eq!(status, 201, "{tok}");
    let token = tok["token"].as_str().expect("token").to_string();
    let tok_id = tok["id"].as_str().expect("token id").to_string();

    // No token, or a wrong one: 401 everywhere.
    for r in matrix() {
        let path = fill(r.path, &acme, &tok_id);
        for bad in ["", "tgt-not-a-token"] {
            let (status, body) = gw.admin_as(bad, r.method, &path, r.body.clone()).await;
            assert_eq!(status, 401, "{} {path} with {bad:?}: {body}", r.method);
        }
    }

    // The tenant admin on the other tenant's data: 403 on every row.
    let mut tried = 0;
    for r in matrix() {
        let path = fill(r.path, &globex, &tok_id);
        if !path.contains("globex") && !path.contains(&globex.key) && !path.contains(&globex.rid) {
            continue; // a listing: pinned to its own tenant below
        }
        tried += 1;
        let (status, body) = gw.admin_as(&token, r.method, &path, r.body.clone()).await;
        if path.contains(&globex.rid) {
            // Looked up within its own tenant: another tenant's request does not exist.
            assert_eq!(status, 404, "{} {path}: {body}", r.method);
        } else {
            assert_eq!(status, 403, "{} {path}: {body}", r.method);
            assert_eq!(body["error"]["type"], "permission_error");
        }
    }
    assert!(tried >= 15, "only {tried} rows name another tenant");
    // Listings that name another tenant, or the platform, are refused too.
    for path in [
        "/keys?tenant=globex",
        "/logs?tenant=globex",
        "/logs?tenant=acme&tenant=globex",
        "/usage?tenant=globex",
        "/budgets?tenant=globex",
        "/audit?platform=1",
        "/analytics?tenant=globex",
        "/traces?tenant=globex",
        "/logs/export?tenant=globex",
    ] {
        let (status, body) = gw.admin_as(&token, "GET", path, None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }

    // The tenant admin on its own data: allowed rows succeed, platform rows are 403.
    for r in matrix() {
        if r.path.contains("{tok}") {
            continue; // revoking its own token is tried last, as the platform
        }
        let path = fill(r.path, &acme, &tok_id);
        let (status, body) = gw.admin_as(&token, r.method, &path, r.body.clone()).await;
        match r.access {
            Access::OwnTenant => assert!(status < 300, "{} {path}: {status} {body}", r.method),
            Access::Platform => assert_eq!(status, 403, "{} {path}: {body}", r.method),
        }
    }
    // What it listed was its own tenant's only.
    let (_, keys) = gw.admin_as(&token, "GET", "/keys", None).await;
    let tenants: BTreeSet<&str> = keys["data"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["tenant_id"].as_str())
        .collect();
    assert_eq!(tenants, BTreeSet::from(["acme"]));
    let (_, logs) = gw.admin_as(&token, "GET", "/logs", None).await;
    assert!(
        logs["data"]
            .as_array()
            .expect("logs")
            .iter()
            .all(|r| r["tenant_id"] == "acme")
    );
    // Nothing of globex's changed.
    let (_, key) = gw
        .admin("GET", &format!("/keys/{}", globex.key), None)
        .await;
    assert!(key["revoked_at"].is_null(), "{key}");

    // The platform may do everything (globex's rows, so acme's revoked key is not reused).
    for r in matrix() {
        let path = fill(r.path, &globex, &tok_id);
        let (status, body) = gw.admin(r.method, &path, r.body.clone()).await;
        assert!(
            status != 401 && status != 403,
            "{} {path} as platform: {status} {body}",
            r.method
        );
    }
    // The token was revoked by the last row: it stops working at once.
    assert_eq!(gw.admin_as(&token, "GET", "/whoami", None).await.0, 401);
    // /metrics names every tenant: never a tenant admin's.
    let metrics = gw
        .client()
        .get(format!("{}/metrics", gw.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 401);
}
