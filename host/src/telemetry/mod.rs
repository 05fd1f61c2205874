//! Machine-readable observability: Prometheus metrics (`/metrics`) and OpenTelemetry
//! traces over OTLP. Both are fed by the log writer from the rows it writes, so
//! neither costs the request path anything.

pub mod metrics;
pub mod otlp;
pub mod protection;

pub use metrics::{BudgetGauge, FleetGauge, Gauges, Metrics, MetricsObserver, ShipGauge};
pub use otlp::OtlpTarget;
pub use protection::{ConnRefused, Protection, Unauthenticated};
