package allinone

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/testutil"
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

// TestAnonymousStreamFollowsDataTTL: the anonymous stream keeps data for the anonymous key
// type's data_ttl, whatever the gateway's fallback retention says.
func TestAnonymousStreamFollowsDataTTL(t *testing.T) {
	profile := testutil.ProfileFile(t, "typed", func(t *keyformat.Type) {
		if t.Anonymous {
			t.DataTTL = keyformat.Duration{Duration: 90 * time.Minute}
		}
	})
	s := startSuite(t, withConfig(func(_ *accounts.Config, k *keys.Config, g *gateway.Config, _ *audit.Config) {
		k.KeyProfile = profile
		g.AnonRetention = 7 * time.Hour
	}))
	nc, err := nats.Connect(s.natsURL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := js.Stream(t.Context(), natsx.AnonIngestStream(s.ns))
		return err == nil && st.CachedInfo().Config.MaxAge == 90*time.Minute
	}, 10*time.Second, 20*time.Millisecond)
}
