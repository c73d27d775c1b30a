package verifier

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
)

// cachedVerifier has one key in its cache, as after its first request.
func cachedVerifier(tb testing.TB) (*Verifier, string) {
	tb.Helper()
	reg := keyformat.Default()
	key, err := reg.Generate("ingest")
	if err != nil {
		tb.Fatal(err)
	}
	cache := keycache.New(time.Hour, time.Second)
	v := New(nil, "", cache, ratelimit.New(nil), ratelimit.New(nil), Config{FailedAuthPerIP: ratelimit.Limit{PerSecond: 10, Burst: 50}})
	v.UseTypes(reg)
	cache.Put(keycache.Sum(key), &keycache.Entry{
		Found: true, KeyID: "key_1", AccountID: "acc_1", ProjectID: "prj_1", Environment: "prd", Type: "ingest",
		Facts: verdict.Facts{Capabilities: []string{"ingest"}, Browser: true, AllowedOrigins: []string{"https://app.example.com"}},
	}, cache.Epoch(), time.Now().UnixNano())
	return v, key
}

// BenchmarkCachedVerification: parse and checksum, hash, cache hit and decision, as on
// every request after a key's first. Compare with BenchmarkSHA256OfKey in the same run.
func BenchmarkCachedVerification(b *testing.B) {
	v, key := cachedVerifier(b)
	req := grant.Request{Key: key, Origin: "https://app.example.com", ClientIP: "192.0.2.1"}
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if code, _, _ := v.verify(ctx, req, now); code != verdict.OK {
			b.Fatal(code)
		}
	}
}

// BenchmarkAuthorizeCached is the whole per-request check: verification plus the per-IP
// and per-key limits and the outcome metric.
func BenchmarkAuthorizeCached(b *testing.B) {
	v, key := cachedVerifier(b)
	v.perKey = ratelimit.New(nil)
	req := grant.Request{Key: key, ClientIP: "192.0.2.1"}
	ctx := context.Background()
	// The key type allows 1000/s; lift it so the benchmark measures work, not refusals.
	reg, _ := keyformat.NewRegistry(append([]keyformat.Type(nil), func() keyformat.Type {
		t, _ := keyformat.Default().Lookup("ingest")
		c := *t
		c.RateLimit = keyformat.RateLimit{}
		return c
	}()))
	v.UseTypes(reg)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSHA256OfKey is the yardstick: one SHA-256 of the same key.
func BenchmarkSHA256OfKey(b *testing.B) {
	_, key := cachedVerifier(b)
	raw := []byte(key)
	b.ReportAllocs()
	var sum [32]byte
	for b.Loop() {
		sum = sha256.Sum256(raw)
	}
	_ = sum
}
