package verifier

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
)

// keysAnswering answers VerifyKey with an active ingest key of id "key_1".
type keysAnswering struct {
	keysv1.KeysServiceClient
	calls atomic.Int64
}

func (k *keysAnswering) VerifyKey(context.Context, *keysv1.VerifyKeyRequest, ...grpc.CallOption) (*keysv1.VerifyKeyResponse, error) {
	k.calls.Add(1)
	return &keysv1.VerifyKeyResponse{Valid: true, Code: "ok", Key: &keysv1.Key{Id: "key_1", Type: "ingest", Capabilities: []string{"ingest"}}}, nil
}

// oldKeys is a keys service from before VerifyKeys.
type oldKeys struct{ keysv1.InternalServiceClient }

func (oldKeys) VerifyKeys(context.Context, *keysv1.VerifyKeysRequest, ...grpc.CallOption) (*keysv1.VerifyKeysResponse, error) {
	return nil, status.Error(codes.Unimplemented, "unknown method VerifyKeys")
}

// TestBatchedMissesFallBackToVerifyKey: a gateway that batches its misses still verifies
// keys against a keys service that has no VerifyKeys yet (a rolling deploy that upgrades
// the gateways first), one VerifyKey call per miss.
func TestBatchedMissesFallBackToVerifyKey(t *testing.T) {
	reg := keyformat.Default()
	key, err := reg.Generate("ingest")
	require.NoError(t, err)
	keys := &keysAnswering{}
	v := New(keys, "", keycache.New(time.Hour, time.Second), ratelimit.New(nil), ratelimit.New(nil),
		Config{FailedAuthPerIP: ratelimit.Limit{PerSecond: 10, Burst: 50}})
	v.UseTypes(reg)
	v.BatchMisses(oldKeys{})
	g, err := v.Authorize(context.Background(), grant.Request{Key: key, ClientIP: "192.0.2.1"})
	require.NoError(t, err)
	require.Equal(t, "key_1", g.KeyID)
	require.EqualValues(t, 1, keys.calls.Load())
}
