-- Request logs shared by the fleet: every replica ships the rows it wrote locally, so
-- the admin API, the CLI and the console answer the same from any replica. Metadata is
-- JSONB with a GIN index (filters and grouping by a metadata key); the decision,
-- attempt and cost breakdowns are JSONB too. Column order matches the shipped records
-- (`jsonb_populate_recordset(NULL::request_logs, ...)`). Text sorts bytewise (COLLATE
-- "C"), as SQLite's does, so listings and groups come in the same order from both.
CREATE TABLE request_logs (
    request_id         TEXT COLLATE "C" PRIMARY KEY,
    ts_ms              BIGINT NOT NULL,
    tenant_id          TEXT COLLATE "C" NOT NULL,
    key_id             TEXT COLLATE "C",
    trace_id           TEXT COLLATE "C" NOT NULL,
    endpoint           TEXT COLLATE "C" NOT NULL,
    team               TEXT COLLATE "C",
    "user"             TEXT COLLATE "C",
    metadata           JSONB NOT NULL,
    requested_model    TEXT COLLATE "C",
    served_model       TEXT COLLATE "C",
    provider           TEXT COLLATE "C",
    status             BIGINT NOT NULL,
    stream             BOOLEAN NOT NULL,
    latency_ms         BIGINT NOT NULL,
    ttft_ms            BIGINT,
    input_tokens       BIGINT NOT NULL DEFAULT 0,
    output_tokens      BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens  BIGINT NOT NULL DEFAULT 0,
    cache_write_tokens BIGINT NOT NULL DEFAULT 0,
    decisions          JSONB NOT NULL,
    error              TEXT COLLATE "C",
    attempts           JSONB NOT NULL,
    cost_nano          BIGINT NOT NULL DEFAULT 0,
    cost               JSONB,
    bundle_version     BIGINT,
    platform_version   BIGINT,
    max_tokens         BIGINT,
    body_bytes         BIGINT NOT NULL DEFAULT 0,
    message_count      BIGINT NOT NULL DEFAULT 0,
    admitted           BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX request_logs_ts ON request_logs (ts_ms DESC, request_id DESC);
CREATE INDEX request_logs_tenant_ts ON request_logs (tenant_id, ts_ms DESC, request_id DESC);
CREATE INDEX request_logs_trace ON request_logs (trace_id);
CREATE INDEX request_logs_metadata ON request_logs USING GIN (metadata jsonb_path_ops);

CREATE TABLE request_bodies (
    request_id         TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL,
    ts_ms              BIGINT NOT NULL,
    request            TEXT NOT NULL,
    response           TEXT NOT NULL,
    request_truncated  BOOLEAN NOT NULL DEFAULT FALSE,
    response_truncated BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX request_bodies_ts ON request_bodies (ts_ms);

-- Budget alerts fired anywhere in the fleet; the key makes recording one idempotent,
-- so a webhook goes out once per threshold and period.
CREATE TABLE budget_alerts (
    tenant_id   TEXT NOT NULL,
    budget      TEXT NOT NULL,
    scope       TEXT NOT NULL,
    value       TEXT NOT NULL,
    period      TEXT NOT NULL,
    bucket      BIGINT NOT NULL,
    threshold   BIGINT NOT NULL,
    fired_at_ms BIGINT NOT NULL,
    payload     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, budget, scope, value, period, bucket, threshold)
);
CREATE INDEX budget_alerts_fired ON budget_alerts (fired_at_ms DESC);
CREATE INDEX budget_alerts_tenant_fired ON budget_alerts (tenant_id, fired_at_ms DESC);
