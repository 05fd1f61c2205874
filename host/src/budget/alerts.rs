//! Budget alerts: logged, recorded once in the store, and POSTed to the tenant's webhook
//! signed with HMAC-SHA256, with retries. Delivery runs on its own task so a slow or
//! failing receiver never holds a request.

use crate::ledger::Alert;
use crate::store::Store;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-tollgate-signature";
/// Attempts per delivery before it is given up (and logged).
const ATTEMPTS: u32 = 5;
/// First wait between attempts; doubles each time.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Time allowed for one delivery attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A tenant's alert receiver.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    /// HMAC key; receivers verify deliveries with it.
    pub secret: String,
}

/// Hands crossed thresholds to the delivery task; cheap to clone, never blocks.
#[derive(Clone)]
pub struct AlertSink(mpsc::UnboundedSender<Alert>);

impl AlertSink {
    /// Starts the delivery task (on the current Tokio runtime).
    pub fn start(store: Store, webhooks: HashMap<String, Webhook>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver_all(rx, store, Arc::new(webhooks)));
        Self(tx)
    }

    /// Queues alerts for logging and delivery.
    pub fn send(&self, alerts: Vec<Alert>) {
        for a in alerts {
            if self.0.send(a).is_err() {
                tracing::error!("budget alert task is gone; an alert was dropped");
            }
        }
    }
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver_all(
    mut rx: mpsc::UnboundedReceiver<Alert>,
    store: Store,
    webhooks: Arc<HashMap<String, Webhook>>,
) {
    let client = match crate::providers::client_builder()
        .timeout(ATTEMPT_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the alert webhook client; webhooks are off");
            reqwest::Client::new()
        }
    };
    while let Some(alert) = rx.recv().await {
        tracing::warn!(
            target: "budget",
            tenant = %alert.tenant,
            budget = %alert.budget,
            scope = %alert.scope,
            value = %alert.value,
            threshold_pct = alert.threshold_pct,
            used = alert.used,
            limit = alert.limit,
            "budget alert: '{}' for {} '{}' reached {}% ({} of {})",
            alert.budget, alert.scope, alert.value, alert.threshold_pct, alert.used, alert.limit
        );
        let recorded = store.record_alert(alert.clone()).await;
        match recorded {
            // Already recorded (by an earlier run): it was delivered then.
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => tracing::error!(error = %e, "could not record a budget alert"),
        }
        if let Some(hook) = webhooks.get(&alert.tenant) {
            tokio::spawn(post(client.clone(), hook.clone(), alert));
        }
    }
}

/// POSTs one alert, retrying connection failures, timeouts, 429 and 5xx with backoff.
async fn post(client: reqwest::Client, hook: Webhook, alert: Alert) {
    let id = format!("alert_{}", crate::ids::random_token(16));
    let body = serde_json::json!({
        "id": id,
        "type": "budget.threshold_crossed",
        "sent_at_ms": crate::ids::now_ms(),
        "alert": alert,
    })
    .to_string();
    let signature = sign(&hook.secret, body.as_bytes());
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let sent = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &signature)
            .header("x-tollgate-event", "budget.threshold_crossed")
            .header("x-tollgate-delivery", &id)
            .header("x-tollgate-attempt", attempt)
            .body(body.clone())
            .send()
            .await;
        let retry = match &sent {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => r.status().is_server_error() || r.status().as_u16() == 429,
            Err(_) => true,
        };
        let why = match sent {
            Ok(r) => format!("status {}", r.status()),
            Err(e) => crate::providers::root_cause(&e),
        };
        if !retry || attempt == ATTEMPTS {
            tracing::error!(url = %hook.url, delivery = %id, attempt, "budget alert webhook failed: {why}");
            return;
        }
        tracing::warn!(url = %hook.url, delivery = %id, attempt, "budget alert webhook failed, retrying: {why}");
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
