package verifier

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
)

// TestGatewayErrorsLoadWithTypes: the profile's gateway_errors come with its key types and
// are the envelope's zero value before any are loaded.
func TestGatewayErrorsLoadWithTypes(t *testing.T) {
	v := New(nil, "", keycache.New(time.Hour, time.Second), ratelimit.New(nil), ratelimit.New(nil), Config{})
	require.Equal(t, keyformat.GatewayErrors{}, v.GatewayErrors())
	reg, err := keyformat.LoadProfile("deeptracer")
	require.NoError(t, err)
	v.UseTypes(reg)
	require.Equal(t, reg.GatewayErrors(), v.GatewayErrors())
	v.UseTypes(keyformat.Default())
	require.Equal(t, keyformat.GatewayErrors{}, v.GatewayErrors())
}

// TestProjectKeyOrigins: deeptracer's project key (a browser type, not browser-only) works
// from a server (no Origin) whatever its project allows; from a browser, any Origin when the
// project's allowed_origins is empty, else only one of them (403 origin_not_allowed).
func TestProjectKeyOrigins(t *testing.T) {
	reg, err := keyformat.LoadProfile("deeptracer")
	require.NoError(t, err)
	v := New(nil, "", keycache.New(time.Hour, time.Second), ratelimit.New(nil), ratelimit.New(nil),
		Config{FailedAuthPerIP: ratelimit.Limit{PerSecond: 1000, Burst: 1000}})
	v.UseTypes(reg)
	ctx := context.Background()
	for _, c := range []struct {
		allowed []string
		origin  string
		ok      bool
	}{
		{nil, "", true},
		{nil, "https://anywhere.example.com", true},
		{[]string{"https://app.example.com"}, "", true},
		{[]string{"https://app.example.com"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "https://evil.example.com", false},
	} {
		key, err := reg.Generate("ingest")
		require.NoError(t, err)
		now := time.Now()
		e := v.entry(&keysv1.VerifyKeyResponse{Valid: true, Code: "ok", AllowedOrigins: c.allowed, Key: &keysv1.Key{
			Id: "key_1", Type: "ingest", AccountId: "acc_1", ProjectId: "prj_1", Capabilities: []string{"ingest"},
		}})
		require.True(t, v.cache.Put(keycache.Sum(key), e, v.cache.Epoch(), now.UnixNano()))
		g, err := v.Authorize(ctx, grant.Request{Key: key, Origin: c.origin, ClientIP: "192.0.2.1"})
		if c.ok {
			require.NoError(t, err, "%+v", c)
			require.Equal(t, "prj_1", g.ProjectID)
			continue
		}
		require.True(t, apierr.IsCode(err, apierr.OriginNotAllowed), "%+v: %v", c, err)
	}
}
