//! Counters of what the gateway refused or deferred to protect itself and its tenants:
//! connections over their caps, requests refused before a key was known, and log rows
//! that waited in the journal. Updated on the request path with one atomic add each,
//! rendered with the rest of `/metrics`.

pub use crate::auth::Unauthenticated;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a connection was closed as soon as it was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnRefused {
    /// The gateway holds `[server] max_connections`.
    Total,
    /// The client's address holds `[server] max_connections_per_client`.
    PerClient,
}

/// The counters.
#[derive(Debug, Default)]
pub struct Protection {
    unauthenticated: [AtomicU64; 5],
    connections_refused: [AtomicU64; 2],
    connections_open: AtomicU64,
}

impl Protection {
    /// Counts a request refused before authentication.
    pub fn unauthenticated(&self, why: Unauthenticated) {
        let i = Unauthenticated::ALL
            .iter()
            .position(|w| *w == why)
            .unwrap_or(0);
        self.unauthenticated[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests refused before authentication so far, for `why`.
    pub fn unauthenticated_count(&self, why: Unauthenticated) -> u64 {
        let i = Unauthenticated::ALL
            .iter()
            .position(|w| *w == why)
            .unwrap_or(0);
        self.unauthenticated[i].load(Ordering::Relaxed)
    }

    /// Counts a connection closed at once.
    pub fn connection_refused(&self, why: ConnRefused) {
        let i = match why {
            ConnRefused::Total => 0,
            ConnRefused::PerClient => 1,
        };
        self.connections_refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Tracks the open connections gauge.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Tracks the open connections gauge.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Appends the families in the Prometheus text format, with the log writer's.
    pub fn render(&self, writer: &crate::store::WriterCounters, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP tollgate_unauthenticated_requests_total Requests refused before a key was known (counted, not logged as rows).\n\
             # TYPE tollgate_unauthenticated_requests_total counter\n",
        );
        for (why, n) in Unauthenticated::ALL.iter().zip(&self.unauthenticated) {
            let _ = writeln!(
                out,
                "tollgate_unauthenticated_requests_total{{reason=\"{}\"}} {}",
                why.as_str(),
                load(n)
            );
        }
        out.push_str(
            "# HELP tollgate_connections_refused_total Connections closed as soon as accepted, by the cap they hit.\n\
             # TYPE tollgate_connections_refused_total counter\n",
        );
        for (why, n) in ["max_connections", "max_connections_per_client"]
            .iter()
            .zip(&self.connections_refused)
        {
            let _ = writeln!(
                out,
                "tollgate_connections_refused_total{{cap=\"{why}\"}} {}",
                load(n)
            );
        }
        let single = [
            (
                "tollgate_connections_open",
                "gauge",
                "Client connections open now.",
                load(&self.connections_open),
            ),
            (
                "tollgate_log_rows_deferred_total",
                "counter",
                "Finished requests that found the log writer's queue full and were written from the journal instead.",
                load(&writer.log_rows_deferred),
            ),
            (
                "tollgate_log_rows_queued",
                "gauge",
                "Finished requests waiting in the log writer's queue.",
                load(&writer.log_rows_queued),
            ),
            (
                "tollgate_journal_errors_total",
                "counter",
                "Failed writes to the usage journal.",
                load(&writer.journal_errors),
            ),
            (
                "tollgate_log_batch_failures_total",
                "counter",
                "Log writer batches that failed and were retried.",
                load(&writer.log_batch_failures),
            ),
        ];
        for (name, kind, help, v) in single {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}
