package allinone

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

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

	// The replica goes away: listings answer 503 unavailable (retry), never a 500, and
	// reads of the primary go on.
	dropDatabase(t, replicaURL)
	down := s.Call("GET", "/v1/keys?project_id="+project, token, nil)
	require.Equal(t, 503, down.Status, "%s", down.Raw)
	require.Equal(t, "unavailable", down.Get("error"))
	require.NotEmpty(t, down.Header.Get("Retry-After"))
	s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil))
}

// A DATABASE_REPLICA_URL whose database is not a copy of the keys service's (no keys
// table) stops the service at start, naming the setting, rather than failing every
// listing later.
func TestReplicaWithoutKeysRefusedAtStart(t *testing.T) {
	cfg, err := keys.ConfigFromEnv()
	require.NoError(t, err)
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.DatabaseURL, cfg.NATSURL, cfg.Namespace = "127.0.0.1:0", "", testutil.DatabaseURL(t), testutil.NATSURL(), testutil.Namespace(t)
	cfg.OperatorToken, cfg.Pepper = "test-operator-"+testutil.Suffix(), "test-pepper-"+strings.Repeat("x", 40)
	cfg.ReplicaURL = testutil.DatabaseURL(t) // a database, but never migrated
	_, err = keys.New(context.Background(), cfg, zap.NewNop())
	require.ErrorContains(t, err, "DATABASE_REPLICA_URL: no table keys in schema")
}

// dropDatabase removes the database of url, closing its connections.
func dropDatabase(t *testing.T, url string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	name := cfg.Database
	cfg.Database = "postgres"
	c, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer func() { _ = c.Close(ctx) }()
	_, err = c.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	require.NoError(t, err)
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
