-- When each of a project's environments was last added: an object from environment name
-- to the instant (JSON timestamp), so that a key lives in one stay of its environment
-- only (docs/keys.md, "Environments"). Environments listed before this migration have no
-- entry: the keys minted in them carry none either, and the two match until the
-- environment is dropped. Entries of environments no longer listed mean nothing and are
-- dropped by the next change of the list.
ALTER TABLE projects ADD COLUMN environments_added_at jsonb NOT NULL DEFAULT '{}'::jsonb;
