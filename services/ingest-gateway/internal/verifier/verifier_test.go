package verifier

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// The verifier here has no keys service at all (a nil client): any lookup would panic, so
// these pass only if garbage and cached keys are decided locally.
func TestDecidedWithoutTheKeysService(t *testing.T) {
	v, key := cachedVerifier(t)
	ctx := context.Background()
	for _, k := range []string{"", "x", "lk_ing_", "lk_ing_" + strings.Repeat("0", 49), key[:len(key)-1] + "!", strings.Repeat("k", 300)} {
		_, err := v.Authorize(ctx, grant.Request{Key: k, ClientIP: "198.51.100.7"})
		if !apierr.IsCode(err, apierr.Unauthenticated) {
			t.Fatalf("%q: %v", k, err)
		}
	}
	g, err := v.Authorize(ctx, grant.Request{Key: key, ClientIP: "198.51.100.7", Origin: "https://app.example.com"})
	if err != nil || g.KeyID != "key_1" || g.ProjectID != "prj_1" || g.Environment != "prd" {
		t.Fatalf("cached key: %+v %v", g, err)
	}
	if _, err := v.Authorize(ctx, grant.Request{Key: key, Origin: "https://evil.example.com"}); !apierr.IsCode(err, apierr.OriginNotAllowed) {
		t.Fatalf("other origin: %v", err)
	}
}

func TestNotReadyUntilTypesLoad(t *testing.T) {
	v, key := cachedVerifier(t)
	v.types.Store(nil)
	_, err := v.Authorize(context.Background(), grant.Request{Key: key})
	e := apierr.FromError(err)
	if e.Code != apierr.Unavailable || e.RetryAfter != time.Second {
		t.Fatalf("got %+v", e)
	}
}
