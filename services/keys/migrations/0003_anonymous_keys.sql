-- Anonymous keys (POST /v1/anonymous-keys) belong to no account: their account_id is NULL,
-- which equals no account id, so every account-scoped query (account_id = $1) leaves them
-- out with no change. They are bound to no project or environment either.
ALTER TABLE keys ALTER COLUMN account_id DROP NOT NULL;
ALTER TABLE keys ADD CONSTRAINT keys_unowned_unbound
    CHECK (account_id IS NOT NULL OR (project_id IS NULL AND environment IS NULL));
