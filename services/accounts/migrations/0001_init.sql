-- Runs with search_path set to the accounts schema (postgres.Migrate).

CREATE TABLE accounts (
	id             text PRIMARY KEY,
	name           text NOT NULL,
	plan           text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro')),
	status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
	suspend_reason text NOT NULL DEFAULT '',
	trial_ends_at  timestamptz NOT NULL,
	created_at     timestamptz NOT NULL,
	updated_at     timestamptz NOT NULL
);

-- Emails are stored lower-cased, so the unique constraint is case-insensitive in effect.
CREATE TABLE users (
	id            text PRIMARY KEY,
	account_id    text NOT NULL REFERENCES accounts (id),
	email         text NOT NULL CONSTRAINT users_email_key UNIQUE,
	password_hash text NOT NULL,
	created_at    timestamptz NOT NULL
);
CREATE INDEX users_account_id ON users (account_id);

-- Only the SHA-256 of a session token is stored; the unique index is the lookup path.
CREATE TABLE sessions (
	id            text PRIMARY KEY,
	user_id       text NOT NULL REFERENCES users (id),
	account_id    text NOT NULL REFERENCES accounts (id),
	token_hash    bytea NOT NULL CONSTRAINT sessions_token_hash_key UNIQUE,
	created_at    timestamptz NOT NULL,
	expires_at    timestamptz NOT NULL,
	step_up_until timestamptz,
	revoked_at    timestamptz
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Ids are prefixed ULIDs, so (account_id, id DESC) lists an account's projects newest first.
CREATE TABLE projects (
	id              text PRIMARY KEY,
	account_id      text NOT NULL REFERENCES accounts (id),
	name            text NOT NULL,
	environments    text[] NOT NULL,
	allowed_origins text[] NOT NULL DEFAULT '{}',
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL
);
CREATE INDEX projects_account_id_id ON projects (account_id, id DESC);
