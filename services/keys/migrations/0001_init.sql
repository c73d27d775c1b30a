-- Keys are stored as a keyed hash only; the plaintext is never written anywhere.
-- Status is derived from the timestamps (revoked_at, expires_at, grace_until) so it can
-- never drift from them.
CREATE TABLE keys (
    id            text PRIMARY KEY,
    account_id    text NOT NULL,
    type          text NOT NULL,
    name          text NOT NULL DEFAULT '',
    key_hash      bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    display_prefix text NOT NULL,
    project_id    text,
    environment   text,
    capabilities  text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    revoke_reason text NOT NULL DEFAULT '',
    grace_until   timestamptz,
    rotated_to_id text REFERENCES keys (id),
    last_used_at  timestamptz,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- Listing is always per account, newest first (ids are ULIDs, so id order is time order).
CREATE INDEX keys_account_id ON keys (account_id, id DESC);
CREATE INDEX keys_account_project ON keys (account_id, project_id, id DESC);
