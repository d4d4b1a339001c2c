-- Dashboard credentials and sessions (owned by the dashboard, dashboard/).
-- They live in their own schema so that the BI contract's read-only role,
-- granted on the public schema, never sees password or session hashes.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS dashboard;
COMMENT ON SCHEMA dashboard IS 'StreamTools dashboard: login credentials and sessions. Not part of the BI contract; grant nothing here to BI roles.';

CREATE TABLE dashboard.users (
    id                  bigserial PRIMARY KEY,
    customer_code       text        NOT NULL,
    login               text        NOT NULL,
    password_hash       text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz
);
CREATE UNIQUE INDEX users_login_key ON dashboard.users (lower(login));
CREATE INDEX users_customer_idx ON dashboard.users (customer_code);
COMMENT ON TABLE dashboard.users IS 'Dashboard logins, one customer each; created with `streamtools dashboard users create`. Distinct from postback access keys.';
COMMENT ON COLUMN dashboard.users.customer_code IS 'The only customer whose data this login sees.';
COMMENT ON COLUMN dashboard.users.login IS 'Login name, unique case-insensitively across customers (an e-mail address works).';
COMMENT ON COLUMN dashboard.users.password_hash IS 'bcrypt hash of the password; the password itself is never stored.';

CREATE TABLE dashboard.sessions (
    token_hash    bytea       PRIMARY KEY,
    user_id       bigint      NOT NULL REFERENCES dashboard.users (id) ON DELETE CASCADE,
    csrf_token    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sessions_user_idx ON dashboard.sessions (user_id);
CREATE INDEX sessions_expires_idx ON dashboard.sessions (expires_at);
COMMENT ON TABLE dashboard.sessions IS 'Dashboard sessions. The cookie holds a random token; only its SHA-256 is stored. Deleting a user or changing the password ends its sessions.';
COMMENT ON COLUMN dashboard.sessions.csrf_token IS 'Synchronizer token that every POST of the session must carry.';

-- +goose Down
DROP TABLE dashboard.sessions;
DROP TABLE dashboard.users;
DROP SCHEMA dashboard;
