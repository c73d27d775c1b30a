package allinone

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// TestRunRefusesTakenAddressesBeforeMigrating: a second `make run` beside a running one
// found its addresses taken only after it had migrated the database and created its
// streams. Now it fails first, naming the variable of every taken address, and the
// database is untouched.
func TestRunRefusesTakenAddressesBeforeMigrating(t *testing.T) {
	rest, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = rest.Close() }()
	ingest, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ingest.Close() }()
	dbURL, ns := testutil.DatabaseURL(t), testutil.Namespace(t)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = Run(ctx, Options{
		HTTPAddr: rest.Addr().String(), DatabaseURL: dbURL, NATSURL: testutil.NATSURL(),
		OperatorToken: "test-operator-" + testutil.Suffix(), Pepper: strings.Repeat("p", 48),
		Configure: func(a *accounts.Config, k *keys.Config, g *gateway.Config, au *audit.Config) {
			a.Namespace, k.Namespace = ns, ns
			a.GRPCAddr, k.GRPCAddr, au.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
			g.HTTPAddr, g.GRPCAddr = ingest.Addr().String(), "127.0.0.1:0"
		},
	}, zap.NewNop())
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "LATCHKEY_HTTP_ADDR="+rest.Addr().String())
	require.Contains(t, msg, "GATEWAY_HTTP_ADDR="+ingest.Addr().String())
	require.Contains(t, msg, "address already in use")
	require.Contains(t, msg, "another `make run`")

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	var tables int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`).Scan(&tables))
	require.Zero(t, tables, "nothing migrated")
}
