-- Servers (POST /v1/servers): each holds a collector key, a key of the profile's servers
-- type bound to the server's project and to the server (keys.server_id), whose requests
-- the gateway stamps with the server's id. key_id is the server's current key (rotation
-- moves it to the successor); older keys of the server (in rotation grace, revoked,
-- imported) name it in keys.server_id. A deleted server keeps its row (deleted_at) for
-- history; every key of it is revoked in the same transaction.
CREATE TABLE servers (
    id          text PRIMARY KEY,
    account_id  text NOT NULL,
    project_id  text NOT NULL,
    name        text NOT NULL,
    hostname    text NOT NULL DEFAULT '',
    tags        text[] NOT NULL DEFAULT '{}',
    -- Deferred: a server and its first key are inserted in one transaction, the server
    -- first (the key names it).
    key_id      text NOT NULL REFERENCES keys (id) DEFERRABLE INITIALLY DEFERRED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    deleted_at  timestamptz
);

-- Listing is per account, newest first (ULIDs sort by time), live servers only.
CREATE INDEX servers_account ON servers (account_id, id DESC) WHERE deleted_at IS NULL;

-- The server a key belongs to; NULL for every other key. Such a key is bound to a
-- project (the server's).
ALTER TABLE keys ADD COLUMN server_id text REFERENCES servers (id);
ALTER TABLE keys ADD CONSTRAINT keys_server_in_project CHECK (server_id IS NULL OR project_id IS NOT NULL);
CREATE INDEX keys_server ON keys (server_id) WHERE server_id IS NOT NULL;
