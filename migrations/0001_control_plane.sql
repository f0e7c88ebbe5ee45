-- Control-plane storage: operators, client keys, versioned packs,
-- deployments (which pack version a gateway group runs), the fleet, and the
-- admin history. Secrets are never stored: tokens and keys as SHA-256,
-- provider credentials as references inside the pack text.

CREATE TABLE operators (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE client_keys (
    id          TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    role        TEXT NOT NULL,
    key_sha256  TEXT NOT NULL UNIQUE,
    -- The first characters of the key, so operators can tell keys apart.
    key_prefix  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  TEXT NOT NULL,
    expires_at  TIMESTAMPTZ,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE TABLE packs (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by TEXT NOT NULL
);

-- Immutable: a change is a new version.
CREATE TABLE pack_versions (
    pack_id    BIGINT NOT NULL REFERENCES packs (id),
    version    INTEGER NOT NULL CHECK (version > 0),
    body       TEXT NOT NULL,
    parsed     JSONB NOT NULL,
    sha256     TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (pack_id, version)
);

CREATE FUNCTION sluice_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER pack_versions_immutable
    BEFORE UPDATE OR DELETE ON pack_versions
    FOR EACH ROW EXECUTE FUNCTION sluice_refuse_change();
CREATE TRIGGER pack_versions_no_truncate
    BEFORE TRUNCATE ON pack_versions
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_refuse_change();
ALTER TABLE pack_versions ENABLE ALWAYS TRIGGER pack_versions_immutable;
ALTER TABLE pack_versions ENABLE ALWAYS TRIGGER pack_versions_no_truncate;

-- A gateway group is a label selector ('' matches every gateway; 'env=prod'
-- or 'env=prod,region=eu' match gateways carrying all those labels). A
-- gateway runs the deployment whose selector it matches with the most labels.
CREATE TABLE deployments (
    selector     TEXT PRIMARY KEY,
    pack_id      BIGINT NOT NULL,
    version      INTEGER NOT NULL,
    activated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    activated_by TEXT NOT NULL,
    FOREIGN KEY (pack_id, version) REFERENCES pack_versions (pack_id, version)
);

-- Every activation, in order; rollback re-activates the one before.
CREATE TABLE deployment_history (
    id           BIGSERIAL PRIMARY KEY,
    selector     TEXT NOT NULL,
    pack_id      BIGINT NOT NULL,
    version      INTEGER NOT NULL,
    activated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    activated_by TEXT NOT NULL
);

CREATE TABLE gateways (
    id              TEXT PRIMARY KEY,
    labels          JSONB NOT NULL,
    applied_version TEXT,
    applied_sha256  TEXT,
    offered_version TEXT,
    last_result     TEXT CHECK (last_result IN ('ack', 'nack')),
    last_error      TEXT,
    last_ack_at     TIMESTAMPTZ,
    last_nack_at    TIMESTAMPTZ,
    connected       BOOLEAN NOT NULL DEFAULT FALSE,
    -- The stream that last claimed the gateway; an older stream ending late
    -- (on another replica) must not mark a reconnected gateway offline.
    session         TEXT,
    first_seen      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE admin_history (
    id     BIGSERIAL PRIMARY KEY,
    at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    before JSONB,
    after  JSONB
);
CREATE TRIGGER admin_history_immutable
    BEFORE UPDATE OR DELETE ON admin_history
    FOR EACH ROW EXECUTE FUNCTION sluice_refuse_change();
ALTER TABLE admin_history ENABLE ALWAYS TRIGGER admin_history_immutable;

-- Wake-up for every control-plane replica: anything that changes what a
-- gateway should run. Lost while a replica is disconnected, so replicas
-- also poll.
CREATE FUNCTION sluice_config_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sluice_config', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;
CREATE TRIGGER deployments_notify AFTER INSERT OR UPDATE OR DELETE ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_config_changed();
CREATE TRIGGER client_keys_notify AFTER INSERT OR UPDATE OR DELETE ON client_keys
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_config_changed();
