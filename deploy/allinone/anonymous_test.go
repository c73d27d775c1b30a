package allinone

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// TestAnonymousKeyIngest: a key minted with no credentials ingests through the gateway,
// and its data lands in the anonymous stream on the key's own subject, nowhere else; the
// minting is limited per client IP (429, tier ip).
func TestAnonymousKeyIngest(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accounts.Config, k *keys.Config, _ *gateway.Config, _ *audit.Config) {
		k.AnonymousLimit = ratelimit.Limit{PerSecond: 0.01, Burst: 2}
	}))
	r := s.Must(200, s.Call("POST", "/v1/anonymous-keys", "", map[string]any{}))
	secret, id := r.Str("secret"), r.Str("key.id")
	require.True(t, strings.HasPrefix(secret, "lk_anon_"), "secret %q", secret)

	sent := s.Send("POST", s.ingest+"/v1/traces", secret, string(tracesBody(t)),
		"Content-Type", "application/x-protobuf", "X-Request-Id", "anon-traces-1")
	require.Equal(t, 200, sent.Status, sent.Raw)

	anonStream := natsx.AnonIngestStream(s.ns)
	msgs := s.storedIn(anonStream, s.ns+".anon."+id+".traces")
	require.Len(t, msgs, 1)
	require.Equal(t, id, msgs[0].Headers().Get("Latchkey-Key-Id"))
	require.Contains(t, msgs[0].Headers().Values("Latchkey-Request-Id"), "anon-traces-1")
	require.Empty(t, s.stored(s.ns+".ingest.>"), "anonymous data is in no account's stream")

	// A second key mints (the burst is 2); the third call from this address is refused.
	other := s.Must(200, s.Call("POST", "/v1/anonymous-keys", "", map[string]any{})).Str("key.id")
	require.Empty(t, s.storedIn(anonStream, s.ns+".anon."+other+".>"), "one key's data is found by its id alone")
	limited := s.Call("POST", "/v1/anonymous-keys", "", map[string]any{})
	limited.RequireError(t, 429, "rate_limited")
	require.Equal(t, "ip", limited.Str("tier"))
	require.NotEmpty(t, limited.Header.Get("Retry-After"))
}
