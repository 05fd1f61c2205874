//! The embedded default: a gateway that works offline out of the box (SQLite store, the
//! first-party plugins, the in-process mock upstream), plus the first-start bootstrap.

use crate::store::{NewKey, Store};
use std::path::Path;

/// Used by `tollgate serve` when no `--config` is given.
pub const DEFAULT_CONFIG: &str = r#"
listen = "127.0.0.1:8787"
data_dir = "data"
default_provider = "mock"

# The built-in mock upstream answers like Anthropic's API, offline.
[[providers]]
id = "mock"
kind = "mock"

[[tenants]]
id = "demo"
name = "Demo tenant"
# Keep request and response bodies: the console's log detail shows them.
capture_bodies = true

# Requests must say which environment they come from.
[[tenants.plugins]]
name = "metadata-policy"
config = { allowed_values = { env = ["prod", "staging", "dev"] } }

# Each user may spend $5 a day (alerts at 80 and 100%, see `tollgate alerts`);
# each key may send 120 requests a minute. `tollgate budgets` shows where they stand.
[[tenants.plugins]]
name = "budget-limit"
[[tenants.plugins.config.limits]]
name = "user-daily-cost"
scope = "user"
metric = "cost"
period = "day"
limit = 5.0
alert_at = [80, 100]
[[tenants.plugins.config.rate_limits]]
name = "key-rpm"
scope = "key"
requests_per_minute = 120
"#;

/// The admin token: `$TOLLGATE_ADMIN_TOKEN`, else the one stored under the data dir,
/// else a new one written there (readable only by the owner).
pub fn admin_token(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    if let Ok(t) = std::env::var("TOLLGATE_ADMIN_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok((t.trim().to_string(), false));
    }
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path)
        && !t.trim().is_empty()
    {
        return Ok((t.trim().to_string(), false));
    }
    let token = format!("tga-{}", crate::ids::random_token(40));
    std::fs::write(&path, &token)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((token, true))
}

/// On first start, creates a key for the demo tenant and returns its secret.
pub async fn bootstrap_demo_key(store: &Store, tenant: &str) -> anyhow::Result<Option<String>> {
    let has_key = store
        .all_keys()
        .await?
        .iter()
        .any(|k| k.tenant_id == tenant);
    if has_key {
        return Ok(None);
    }
    let (_, secret) = store
        .create_key(
            tenant.to_string(),
            NewKey {
                name: Some("demo".into()),
                team: Some("engineering".into()),
                user: Some("dev@example.com".into()),
                ..Default::default()
            },
        )
        .await?;
    Ok(Some(secret))
}

/// The banner printed on first start: what to paste to send a first request.
pub fn first_start_banner(base_url: &str, key: &str, admin_token: &str) -> String {
    format!(
        r#"
Tollgate is running at {base_url} (embedded default: offline mock upstream, SQLite in ./data)

  demo tenant API key (shown once): {key}
  admin token:                      {admin_token}

Send a first request:

  curl -s {base_url}/v1/messages \
    -H 'authorization: Bearer {key}' \
    -H 'anthropic-version: 2023-06-01' \
    -H 'content-type: application/json' \
    -H 'x-portkey-metadata: {{"team":"engineering","user":"dev@example.com","env":"dev"}}' \
    -d '{{"model":"claude-sonnet-4-5","max_tokens":128,"messages":[{{"role":"user","content":"Hello, gateway"}}]}}'

Then see it in the console, {base_url}/console/ (sign in with the admin token), or:

  TOLLGATE_ADMIN_TOKEN={admin_token} tollgate logs --tenant demo --filter team=engineering
"#
    )
}
