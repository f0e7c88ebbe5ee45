-- Gateway credentials for the gRPC port: a gateway authenticates its config
-- stream and its audit batches with a token bound to one gateway id (or, with
-- mutual TLS, a client certificate naming that id). Tokens are stored as
-- SHA-256 only; several may be live for one gateway so they can be rotated.
CREATE TABLE gateway_tokens (
    id           BIGSERIAL PRIMARY KEY,
    gateway_id   TEXT NOT NULL CHECK (length(gateway_id) BETWEEN 1 AND 128),
    token_sha256 TEXT NOT NULL UNIQUE,
    -- The first characters of the token, so operators can tell tokens apart.
    token_prefix TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   TEXT NOT NULL,
    revoked_at   TIMESTAMPTZ,
    revoked_by   TEXT
);

CREATE INDEX gateway_tokens_gateway ON gateway_tokens (gateway_id);
