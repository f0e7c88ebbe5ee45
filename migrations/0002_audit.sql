-- Audit records ingested from gateways. Append-only: UPDATE, DELETE and
-- TRUNCATE are refused by triggers enabled ALWAYS (so they fire under
-- replication roles too). Partitioned by day; retention drops whole
-- partitions (DROP TABLE is how records leave, never DELETE). Each gateway's
-- records form one hash chain (`chain` = gateway id), sealed in commit order.

CREATE TABLE audit_records (
    day         DATE NOT NULL,
    request_id  TEXT NOT NULL,
    chain       TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    time        TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    key_id      TEXT,
    role        TEXT,
    target      TEXT,
    model       TEXT,
    status      INTEGER,
    -- The strongest policy outcome of the request (block > redact > flag >
    -- pass), or NULL when no policy decided.
    outcome     TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    -- The sealed record's canonical bytes: what the hash covers.
    body        TEXT NOT NULL,
    record      JSONB NOT NULL,
    -- A resent record (same request id, hence same day) is ignored.
    PRIMARY KEY (day, request_id)
) PARTITION BY RANGE (day);

CREATE INDEX audit_records_chain_seq ON audit_records (chain, seq);
CREATE INDEX audit_records_time ON audit_records (time);

CREATE TRIGGER audit_records_append_only
    BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION sluice_refuse_change();

-- The head of each chain; locked while a batch is sealed so that a chain's
-- sequence has no gaps or forks, whichever replica ingests.
CREATE TABLE audit_chain_heads (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL DEFAULT 0,
    hash  TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000'
);

-- What retention removed: per chain, the last dropped link, so the chain
-- still verifies from the first record that remains.
CREATE TABLE audit_anchors (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);

-- Creates the day's partition if missing, with the append-only triggers
-- enabled ALWAYS on it (TRUNCATE triggers are per table).
CREATE FUNCTION sluice_audit_partition(d DATE) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    part TEXT := 'audit_records_' || to_char(d, 'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(7262738);
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    EXECUTE format('CREATE TABLE %I PARTITION OF audit_records FOR VALUES FROM (%L) TO (%L)',
                   part, d, d + 1);
    EXECUTE format('CREATE TRIGGER no_truncate BEFORE TRUNCATE ON %I
                    FOR EACH STATEMENT EXECUTE FUNCTION sluice_refuse_change()', part);
    EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER no_truncate', part);
    EXECUTE format('ALTER TABLE %I ENABLE ALWAYS TRIGGER audit_records_append_only', part);
END;
$$;

CREATE TRIGGER audit_records_no_truncate
    BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION sluice_refuse_change();
ALTER TABLE audit_records ENABLE ALWAYS TRIGGER audit_records_no_truncate;
ALTER TABLE audit_records ENABLE ALWAYS TRIGGER audit_records_append_only;
