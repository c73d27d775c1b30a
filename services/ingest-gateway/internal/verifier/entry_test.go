package verifier

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
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
}
