-- One key per project (docs/keys.md, "One key per project"): a key of a per_project type
-- (keyformat.Type.PerProject) is marked when it is inserted, and a project holds at most
-- one such key that is neither revoked nor rotated (grace_until set), whatever runs at
-- once: two concurrent creations cannot both commit, the second fails on this index and is
-- answered 409 already_exists. Keys of such types never expire (the API refuses
-- expires_at for them), so "not revoked and not rotated" is exactly "active". A rotated
-- key is in grace beside its successor; at most one is, which RotateKey checks under the
-- lock of the one active key.
ALTER TABLE keys ADD COLUMN per_project boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX keys_one_per_project ON keys (project_id, type)
    WHERE per_project AND revoked_at IS NULL AND grace_until IS NULL;
