-- The audit log: one row per event, append-only, each account's events a hash chain.
-- Runs with search_path = audit, as the schema's owner.

CREATE TABLE events (
    id            text        COLLATE "C" PRIMARY KEY,
    account_id    text        NOT NULL, -- '' for calls whose caller had no account
    sequence      bigint      NOT NULL CHECK (sequence > 0),
    occurred_at   timestamptz NOT NULL,
    actor_type    text        NOT NULL,
    actor_id      text        NOT NULL,
    key_id        text        NOT NULL,
    action        text        NOT NULL,
    resource_type text        NOT NULL,
    resource_id   text        NOT NULL,
    result        text        NOT NULL,
    request_id    text        NOT NULL,
    client_ip     text        NOT NULL,
    user_agent    text        NOT NULL,
    details       jsonb       NOT NULL DEFAULT '{}',
    prev_hash     text        NOT NULL,
    hash          text        NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now(),
    -- The chain order: verify walks it, retention cuts its oldest end.
    CONSTRAINT events_chain UNIQUE (account_id, sequence)
);

-- ListEvents: newest first by (occurred_at, id) within an account, unfiltered or by one
-- exact filter (the others, if any, are checked on the rows the index yields).
CREATE INDEX events_by_time          ON events (account_id, occurred_at, id);
CREATE INDEX events_by_key           ON events (account_id, key_id, occurred_at, id);
CREATE INDEX events_by_resource_id   ON events (account_id, resource_id, occurred_at, id);
CREATE INDEX events_by_resource_type ON events (account_id, resource_type, occurred_at, id);
CREATE INDEX events_by_action        ON events (account_id, action, occurred_at, id);
CREATE INDEX events_by_result        ON events (account_id, result, occurred_at, id);

-- The last link of each account's chain, locked (SELECT … FOR UPDATE) by whoever appends,
-- so that replicas and restarts never fork a chain. It outlives retention: the next event
-- links to the last one even when that one has been deleted.
CREATE TABLE chain_heads (
    account_id text   PRIMARY KEY,
    sequence   bigint NOT NULL,
    hash       text   NOT NULL
);

-- Append-only, enforced here and not by convention: no UPDATE, DELETE or TRUNCATE of
-- events, by anyone, unless retention (apply_retention, below) is deleting in this very
-- transaction. A superuser can still get round it (session_replication_role = replica,
-- ALTER TABLE … DISABLE TRIGGER); the hash chain is what catches that.
CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('latchkey.audit_retention', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit events are append-only'
        USING ERRCODE = 'LKA01', HINT = 'only audit.apply_retention() deletes events';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Retention, the one way events are ever deleted: the longest run of an account's chain,
-- from its oldest remaining event, of events that occurred before older_than. Deleting a
-- prefix keeps what remains a verifiable chain (verify trusts the oldest remaining event's
-- prev_hash); an event older than the cut-off that follows a younger one waits until the
-- younger one goes too. It refuses cut-offs less than a day ago, so that even the service's
-- own role cannot empty the recent log. Returns the number of events deleted.
CREATE FUNCTION apply_retention(p_account_id text, p_older_than timestamptz) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = audit, pg_temp AS $$
DECLARE
    keep_from bigint;
    deleted   bigint;
BEGIN
    IF p_older_than IS NULL OR p_older_than > now() - interval '1 day' THEN
        RAISE EXCEPTION 'retention cut-off % is less than a day ago', p_older_than
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT sequence INTO keep_from FROM events
     WHERE account_id = p_account_id AND occurred_at >= p_older_than
     ORDER BY sequence LIMIT 1;
    PERFORM set_config('latchkey.audit_retention', 'on', true);
    DELETE FROM events
     WHERE account_id = p_account_id AND (keep_from IS NULL OR sequence < keep_from);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('latchkey.audit_retention', 'off', true);
    RETURN deleted;
END
$$;

-- The role the service runs as (SET ROLE on every pooled connection): it may read and
-- append events and move chain heads, and nothing else. Roles are cluster-wide and several
-- databases may migrate at once (tests do), so creating it tolerates a concurrent twin.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'latchkey_audit_writer') THEN
        BEGIN
            CREATE ROLE latchkey_audit_writer NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- The connecting user must be able to SET ROLE to it (superusers always can).
    IF NOT pg_has_role(current_user, 'latchkey_audit_writer', 'MEMBER') THEN
        EXECUTE format('GRANT latchkey_audit_writer TO %I', current_user);
    END IF;
END
$$;

REVOKE ALL ON events, chain_heads FROM PUBLIC;
REVOKE ALL ON FUNCTION apply_retention(text, timestamptz) FROM PUBLIC;
GRANT USAGE ON SCHEMA audit TO latchkey_audit_writer;
GRANT SELECT, INSERT ON events TO latchkey_audit_writer;
GRANT SELECT, INSERT, UPDATE ON chain_heads TO latchkey_audit_writer;
GRANT EXECUTE ON FUNCTION apply_retention(text, timestamptz) TO latchkey_audit_writer;
