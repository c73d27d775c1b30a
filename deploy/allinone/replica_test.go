package allinone

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/keys"
)

// TestReplicaNeverResurrectsARevokedKey: with DATABASE_REPLICA_URL set to a replica that
// has not replayed a revocation, the key is listed as it was, but verification (at the
// keys service and at a gateway that dropped the key on its event) refuses it.
//
// The replica is a second database holding a copy of the keys taken before the revocation:
// a replica frozen at that point of its replay. What is tested is which database each read
// goes to, which is the same for a real streaming replica; what a real one adds (read-only
// sessions, WAL replay) changes no code path of the keys service.
func TestReplicaNeverResurrectsARevokedKey(t *testing.T) {
	ctx := context.Background()
	replicaURL := testutil.DatabaseURL(t)
	_, err := keys.Migrate(ctx, keys.Config{Postgres: settings.Postgres{DatabaseURL: replicaURL}})
	require.NoError(t, err)
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) { k.ReplicaURL = replicaURL }))
	token, _ := s.signUp("replica")
	project := s.Project(token)
	id, secret := s.IngestKey(token, project)

	// The gateway verifies the key and caches it.
	send := func() int {
		return s.Send("POST", s.ingest+"/ingest/logs", secret, map[string]any{"service": "replica", "logs": []any{map[string]any{"message": "hi"}}}).Status
	}
	require.Equal(t, 200, send())

	// The replica replays up to here, then stops.
	copyKeys(t, s.dbURL, replicaURL)

	r := s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"wait_for_gateways": true}))
	require.Equal(t, true, r.Get("receipt.complete"), "every gateway dropped the key")

	// Listings read the replica: the key is listed as it was before the revocation.
	list := s.Must(200, s.Call("GET", "/v1/keys?project_id="+project, token, nil))
	listed, _ := list.Get("keys").([]any)
	require.Len(t, listed, 1)
	require.Equal(t, "active", testutil.Str(listed[0].(map[string]any), "status"), "the listing comes from the lagging replica")

	// Verification reads the primary: revoked, at the keys service and at the gateway,
	// which looks the key up again after dropping it and must not cache it as active.
	require.Equal(t, "revoked", s.Verify(token, secret).Get("code"))
	for range 3 { // the first answer and any cached after it
		require.Equal(t, 401, send())
	}
}

// copyKeys copies the keys table of the primary into the replica's, as it is now.
func copyKeys(t *testing.T, primaryURL, replicaURL string) {
	t.Helper()
	ctx := context.Background()
	primary, err := pgx.Connect(ctx, primaryURL)
	require.NoError(t, err)
	defer func() { _ = primary.Close(ctx) }()
	replica, err := pgx.Connect(ctx, replicaURL)
	require.NoError(t, err)
	defer func() { _ = replica.Close(ctx) }()
	rows, err := primary.Query(ctx, "SELECT row_to_json(k)::text FROM keys.keys k")
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	_, err = replica.Exec(ctx, "DELETE FROM keys.keys")
	require.NoError(t, err)
	for _, row := range all {
		_, err := replica.Exec(ctx, "INSERT INTO keys.keys SELECT * FROM json_populate_record(NULL::keys.keys, $1::json)", row)
		require.NoError(t, err)
	}
}
