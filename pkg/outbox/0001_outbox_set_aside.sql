-- Rows JetStream will never take (a subject it refuses, a payload over its limit) or that
-- kept failing while the rows behind them went through are set aside: dead_at says when,
-- last_error why, and the relay goes on with later rows. attempts counts failed publishes.
-- To retry a row after fixing its cause: UPDATE outbox SET dead_at = NULL, attempts = 0
-- WHERE seq = ...
ALTER TABLE outbox
    ADD COLUMN attempts   integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error text,
    ADD COLUMN dead_at    timestamptz;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL AND dead_at IS NULL;
