-- When a signed leak report (POST /v1/secret-scanning/reports) found the key in public,
-- while it was live. Set once: a later report of the same key changes nothing. The key is
-- revoked in the same transaction (revoke_reason 'exposed') unless its type's on_exposed is
-- 'notify'. NULL for a key never reported.
ALTER TABLE keys ADD COLUMN exposed_at timestamptz;
