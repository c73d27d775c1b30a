-- Signed checkpoints of each account's chain: statements the audit service signs with a key
-- the database never holds (Ed25519; see chain.Checkpoint), so that a superuser who rewrites
-- or removes events cannot make a chain verify. 'head' vouches for the hash of the event at
-- a sequence; 'cut' records where retention deleted the oldest events (the sequence of the
-- first event kept and the hash of the last one deleted). Append-only like events.
CREATE TABLE checkpoints (
    account_id text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('head', 'cut')),
    sequence   bigint      NOT NULL CHECK (sequence > 0),
    hash       text        NOT NULL,
    signed_at  timestamptz NOT NULL,
    public_key text        NOT NULL,
    signature  text        NOT NULL,
    PRIMARY KEY (account_id, kind, sequence)
);

CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- The sequence of each chain's newest head checkpoint, so appenders and the periodic
-- signer know when a head is due. Only a schedule: verify never trusts it.
ALTER TABLE chain_heads ADD COLUMN checkpoint_sequence bigint NOT NULL DEFAULT 0;

REVOKE ALL ON checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON checkpoints TO latchkey_audit_writer;
