-- Per-account hourly caps on sensitive calls, shared by every replica.
CREATE TABLE quota_usage (
    account_id   text NOT NULL,
    action       text NOT NULL,
    window_start timestamptz NOT NULL,
    used         integer NOT NULL,
    PRIMARY KEY (account_id, action, window_start)
);
