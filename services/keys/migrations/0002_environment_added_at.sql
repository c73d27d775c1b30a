-- When the stay of its environment a key was minted in began: the project's
-- environments_added_at entry for the key's environment, as accounts answered the check
-- made before minting (docs/keys.md, "Environments"). A key works only while the project
-- still names that same instant (verdict.Environments.Holds). NULL for a key bound to no
-- environment, and for keys minted before this was recorded (their environments have no
-- entry either, until dropped).
ALTER TABLE keys ADD COLUMN environment_added_at timestamptz;
