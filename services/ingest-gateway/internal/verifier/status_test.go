package verifier

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/verdict/verdicttest"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
)

func stamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// TestDecisionFollowsStatusRule: the gateway, deciding on a cached answer of VerifyKey as
// it does on every request after a key's first, accepts exactly the keys the status rule
// (verdict.Lifetime.Status) calls active or in grace, and refuses the others with the
// rule's code: every combination of revoked_at, expires_at and grace_until unset, before,
// exactly at and after the request's instant, at many instants.
func TestDecisionFollowsStatusRule(t *testing.T) {
	v, key := cachedVerifier(t)
	h := keycache.Sum(key)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		now := verdicttest.Now(r)
		for _, l := range verdicttest.Lifetimes(r, now) {
			// The answer as the keys service sends it.
			resp := &keysv1.VerifyKeyResponse{Key: &keysv1.Key{
				Id: "key_1", Type: "ingest", AccountId: "acc_1", ProjectId: "prj_1", Environment: "prd",
				Capabilities: []string{"ingest"},
				RevokedAt:    stamp(l.RevokedAt), ExpiresAt: stamp(l.ExpiresAt), GraceUntil: stamp(l.GraceUntil),
			}}
			if !v.cache.Put(h, v.entry(resp), v.cache.Epoch(), now.UnixNano()) {
				t.Fatal("cache refused the entry")
			}
			got, _, _ := v.verify(ctx, grant.Request{Key: key, ClientIP: "192.0.2.1"}, now)
			if want := l.Status(now).Code(); got != want {
				t.Fatalf("%+v at %s: gateway says %s, the status rule %s (%s)", l, now, got, want, l.Status(now))
			}
		}
	}
}
