package idempotency

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/testutil"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testutil.DatabaseURL(t))
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = "idem"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = postgres.Migrate(ctx, pool, "idem", Migrations)
	require.NoError(t, err)
	return New(pool, []byte("test seal key"), keysv1.KeysService_CreateKey_FullMethodName)
}

// call is one CreateKey through s with Idempotency-Key key, on ctx.
func call(ctx context.Context, s *Store, key string, runs *atomic.Int32) (any, error) {
	ctx = auth.With(ctx, &auth.Principal{Kind: auth.KindUser, AccountID: "acc_1", UserID: "usr_1"})
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(MetadataKey, key))
	info := &grpc.UnaryServerInfo{FullMethod: keysv1.KeysService_CreateKey_FullMethodName}
	return s.Unary(ctx, &keysv1.CreateKeyRequest{Name: "k"}, info, func(ctx context.Context, _ any) (any, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		runs.Add(1)
		return &keysv1.CreateKeyResponse{Secret: "secret"}, nil
	})
}

// TestCanceledCallReleasesItsKey: a caller that goes away at any moment of a call, the
// reservation of its Idempotency-Key included, leaves the key free or answered: the retry
// runs or replays at once, never "still running" until the key is abandoned, and the work
// is done once.
func TestCanceledCallReleasesItsKey(t *testing.T) {
	s := newStore(t)
	for i := range 200 {
		key := fmt.Sprintf("key-%d", i)
		var runs atomic.Int32
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%40)*50*time.Microsecond)
		_, _ = call(ctx, s, key, &runs)
		cancel()
		start := time.Now()
		resp, err := call(context.Background(), s, key, &runs)
		require.NoError(t, err, "retry %d after %s", i, time.Since(start))
		require.Less(t, time.Since(start), 2*time.Second, "retry %d waited for a call that was gone", i)
		require.True(t, proto.Equal(&keysv1.CreateKeyResponse{Secret: "secret"}, resp.(proto.Message)))
		require.EqualValues(t, 1, runs.Load(), "the work is done once")
	}
}
