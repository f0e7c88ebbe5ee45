-- Web console sessions. The browser holds a random session id in an
-- HttpOnly, SameSite=Strict cookie; the table keeps only its SHA-256, and
-- never the operator's token. A session ends at its expiry, on logout, or
-- when its operator is disabled (checked on every request) or deleted.
CREATE TABLE console_sessions (
    id_sha256   TEXT PRIMARY KEY,
    operator    TEXT NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
