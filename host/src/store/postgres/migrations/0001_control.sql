-- The control plane every replica shares: tenants, keys, tenant admin tokens, bundles
-- with their versions, components and audit, and the change counter replicas poll.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    team        TEXT,
    "user"      TEXT,
    models      TEXT,
    secret_hash TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    secret_hash TEXT NOT NULL UNIQUE
);
CREATE TABLE bundles (
    scope         TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at_ms BIGINT NOT NULL,
    author        TEXT NOT NULL,
    hash          TEXT NOT NULL,
    message       TEXT,
    summary       TEXT NOT NULL,
    spec          TEXT NOT NULL,
    PRIMARY KEY (scope, version)
);
CREATE TABLE bundle_active (
    scope   TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE plugin_blobs (
    sha256 TEXT PRIMARY KEY,
    bytes  BYTEA NOT NULL
);
CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    ts_ms  BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    scope  TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_scope ON audit_log(scope, id DESC);
-- Bumped in the transaction of every change (with a NOTIFY): a replica that missed a
-- notification sees the counter move and reloads.
CREATE TABLE changes (
    id  INTEGER PRIMARY KEY CHECK (id = 0),
    seq BIGINT NOT NULL
);
INSERT INTO changes (id, seq) VALUES (0, 0);
