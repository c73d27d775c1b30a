package verifier

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
)

// TestEntryFromVerifyKey: what the gateway caches of a VerifyKey answer routes the data
// and tells the client what it must know. An unclaimed anonymous key goes to the anonymous
// stream with no notice; once claimed (it has an account and a grace), to its account with
// the claim notice; a rotated regular key in grace gets no notice; a session key is
// browser-only.
func TestEntryFromVerifyKey(t *testing.T) {
	v, _ := cachedVerifier(t)
	v.UseTypes(keyformat.Default())
	grace := time.Date(2026, 12, 30, 12, 0, 0, 0, time.UTC)
	entry := func(k *keysv1.Key) grant.Grant {
		e := v.entry(&keysv1.VerifyKeyResponse{Valid: true, Code: "ok", Key: k})
		require.True(t, e.Found)
		return grant.Grant{KeyID: e.KeyID, AccountID: e.AccountID, Anonymous: e.Anonymous, Notice: e.Notice}
	}

	g := entry(&keysv1.Key{Id: "key_a", Type: "anonymous"})
	require.Equal(t, grant.Grant{KeyID: "key_a", Anonymous: true}, g)

	g = entry(&keysv1.Key{Id: "key_a", Type: "anonymous", AccountId: "acc_1", ProjectId: "prj_1", Environment: "prd", GraceUntil: timestamppb.New(grace)})
	require.Equal(t, grant.Grant{KeyID: "key_a", AccountID: "acc_1", Notice: "claimed; grace_until=2026-12-30T12:00:00Z"}, g)

	g = entry(&keysv1.Key{Id: "key_i", Type: "ingest", AccountId: "acc_1", GraceUntil: timestamppb.New(grace)})
	require.Equal(t, grant.Grant{KeyID: "key_i", AccountID: "acc_1"}, g)

	e := v.entry(&keysv1.VerifyKeyResponse{Key: &keysv1.Key{Id: "key_s", Type: "session", AccountId: "acc_1"}})
	require.True(t, e.Facts.BrowserOnly)
	require.True(t, e.Facts.Browser)

	// A collector key's server travels with its data.
	e = v.entry(&keysv1.VerifyKeyResponse{Key: &keysv1.Key{Id: "key_c", Type: "collector", AccountId: "acc_1", ProjectId: "prj_1", ServerId: "srv_1"}})
	require.Equal(t, "srv_1", e.ServerID)
}

// TestRefusalSaysWhy: a key that was good once (revoked, or expired: past expires_at, its
// rotation grace or its claim grace) is refused with 401 unauthenticated and the verdict
// code as the envelope's "reason", so a client can tell a dead key from a typo.
func TestRefusalSaysWhy(t *testing.T) {
	v, key := cachedVerifier(t)
	h := keycache.Sum(key)
	now := time.Now()
	past := timestamppb.New(now.Add(-time.Minute))
	for reason, k := range map[string]*keysv1.Key{
		"revoked": {RevokedAt: past},
		"expired": {ExpiresAt: past},
	} {
		k.Id, k.Type, k.AccountId, k.Capabilities = "key_1", "ingest", "acc_1", []string{"ingest"}
		require.True(t, v.cache.Put(h, v.entry(&keysv1.VerifyKeyResponse{Key: k}), v.cache.Epoch(), now.UnixNano()))
		_, err := v.Authorize(context.Background(), grant.Request{Key: key, ClientIP: "192.0.2.1"})
		e := apierr.FromError(err)
		require.Equal(t, apierr.Unauthenticated, e.Code, reason)
		require.Equal(t, reason, e.Metadata["reason"])
	}
}

// TestRefusalKeepsTheNotice: a claimed anonymous key in its grace that is refused for one
// request (a foreign origin, its rate limit) still hands its notice back with the error; a
// key past its grace has no notice to give.
func TestRefusalKeepsTheNotice(t *testing.T) {
	v, key := cachedVerifier(t)
	reg, err := keyformat.NewRegistry(func() []keyformat.Type {
		types := keyformat.Default().Types()
		for i := range types {
			types[i].RateLimit = keyformat.RateLimit{PerSecond: 0.001, Burst: 1}
		}
		return types
	}())
	require.NoError(t, err)
	v.UseTypes(reg)
	h := keycache.Sum(key)
	now := time.Now()
	put := func(grace time.Time) {
		resp := &keysv1.VerifyKeyResponse{
			Key: &keysv1.Key{
				Id: "key_a", Type: "anonymous", AccountId: "acc_1", ProjectId: "prj_1", Environment: "prd",
				Capabilities: []string{"ingest"}, GraceUntil: timestamppb.New(grace),
			},
			AllowedOrigins: []string{"https://app.example.com"},
		}
		require.True(t, v.cache.Put(h, v.entry(resp), v.cache.Epoch(), now.UnixNano()))
	}
	put(now.Add(time.Hour))
	want := grant.ClaimNotice(now.Add(time.Hour))

	g, err := v.Authorize(context.Background(), grant.Request{Key: key, Origin: "https://evil.example.com", ClientIP: "192.0.2.1"})
	require.True(t, apierr.IsCode(err, apierr.OriginNotAllowed), "%v", err)
	require.Equal(t, grant.Grant{Notice: want}, g)

	g, err = v.Authorize(context.Background(), grant.Request{Key: key, ClientIP: "192.0.2.1"})
	require.NoError(t, err)
	require.Equal(t, want, g.Notice)
	g, err = v.Authorize(context.Background(), grant.Request{Key: key, ClientIP: "192.0.2.1"})
	require.True(t, apierr.IsCode(err, apierr.RateLimited), "%v", err)
	require.Equal(t, grant.Grant{Notice: want}, g)

	put(now.Add(-time.Minute))
	g, err = v.Authorize(context.Background(), grant.Request{Key: key, ClientIP: "192.0.2.1"})
	require.True(t, apierr.IsCode(err, apierr.Unauthenticated), "%v", err)
	require.Equal(t, grant.Grant{}, g, "past its grace, no notice")
}

// TestBrowserOnlyKeyWithoutOrigin: a session key sent with no Origin is told it needs one,
// not that its (absent) origin is refused.
func TestBrowserOnlyKeyWithoutOrigin(t *testing.T) {
	v, key := cachedVerifier(t)
	h := keycache.Sum(key)
	resp := &keysv1.VerifyKeyResponse{
		Key:            &keysv1.Key{Id: "key_s", Type: "session", AccountId: "acc_1", ProjectId: "prj_1", Environment: "prd", Capabilities: []string{"ingest"}},
		AllowedOrigins: []string{"https://app.example.com"},
	}
	require.True(t, v.cache.Put(h, v.entry(resp), v.cache.Epoch(), time.Now().UnixNano()))
	_, err := v.Authorize(context.Background(), grant.Request{Key: key, ClientIP: "192.0.2.1"})
	e := apierr.FromError(err)
	require.Equal(t, apierr.OriginNotAllowed, e.Code)
	require.Contains(t, e.Message, "has no Origin")
	_, err = v.Authorize(context.Background(), grant.Request{Key: key, Origin: "https://evil.example.com", ClientIP: "192.0.2.1"})
	require.Equal(t, "this origin may not use the key", apierr.FromError(err).Message)
	_, err = v.Authorize(context.Background(), grant.Request{Key: key, Origin: "https://app.example.com", ClientIP: "192.0.2.1"})
	require.NoError(t, err)
}
