-- When an anonymous key was claimed (POST /v1/keys:claim): the claim gave it an account,
-- project and environment, put it in grace until its type's claim_grace ran out and named
-- the new key in rotated_to_id. NULL for every key never claimed. Only a key with an
-- account can have been claimed.
ALTER TABLE keys ADD COLUMN claimed_at timestamptz;
ALTER TABLE keys ADD CONSTRAINT keys_claimed_owned CHECK (claimed_at IS NULL OR account_id IS NOT NULL);
