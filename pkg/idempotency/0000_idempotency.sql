-- Idempotency-Key records: the request's fingerprint (caller included) and its successful
-- answer, for 24 hours.
-- A row with done = false is a call still running; a duplicate waits for it.
CREATE TABLE idempotency_keys (
    account_id  text NOT NULL,
    key         text NOT NULL,
    method      text NOT NULL,
    fingerprint bytea NOT NULL,
    done        boolean NOT NULL DEFAULT false,
    response    bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
