-- Audit records are de-duplicated on an id the gateway mints for each record
-- (`record_id`), within the sending gateway's chain. Before, the key was the
-- request id, which a client can choose (`x-request-id`): reusing one hid
-- the client's later requests from the central audit.
ALTER TABLE audit_records ADD COLUMN record_id TEXT;

-- Rows stored before: their request id was their key. The append-only
-- trigger is lifted for this one statement, which touches no hashed column.
ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only;
UPDATE audit_records SET record_id = request_id;
ALTER TABLE audit_records ENABLE ALWAYS TRIGGER audit_records_append_only;

ALTER TABLE audit_records ALTER COLUMN record_id SET NOT NULL;
ALTER TABLE audit_records DROP CONSTRAINT audit_records_pkey;
ALTER TABLE audit_records ADD PRIMARY KEY (day, chain, record_id);
