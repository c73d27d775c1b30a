package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// TestMayChangeLife walks every status a key can be in, every change an update can make
// to its life and rights, and every kind of caller: no update revives a key that can no
// longer be used, and widening an account key needs a fresh step-up, never an account key.
func TestMayChangeLife(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	account := &keyformat.Type{Name: "account", Scope: keyformat.ScopeAccount, Capabilities: []string{"keys:read", "keys:write"}}
	ingest := &keyformat.Type{Name: "ingest", Scope: keyformat.ScopeEnvironment, Capabilities: []string{"ingest"}}
	statuses := map[string]func(k *store.Key){
		store.StatusActive:        func(*store.Key) {},
		store.StatusGrace:         func(k *store.Key) { k.GraceUntil = at(time.Hour) },
		store.StatusRevoked:       func(k *store.Key) { k.RevokedAt = at(-time.Minute) },
		store.StatusExpired:       func(k *store.Key) { k.ExpiresAt = at(-time.Minute) },
		"expired (grace is over)": func(k *store.Key) { k.GraceUntil = at(-time.Minute) },
	}
	changes := map[string]struct {
		apply func(k *store.Key)
		widen bool
	}{
		"later expiry":     {func(k *store.Key) { k.ExpiresAt = at(48 * time.Hour) }, true},
		"no expiry":        {func(k *store.Key) { k.ExpiresAt = nil }, true},
		"earlier expiry":   {func(k *store.Key) { k.ExpiresAt = at(time.Minute) }, false},
		"more rights":      {func(k *store.Key) { k.Capabilities = []string{"keys:read", "keys:write"} }, true},
		"fewer rights":     {func(k *store.Key) { k.Capabilities = nil }, false},
		"other rights":     {func(k *store.Key) { k.Capabilities = []string{"keys:write"} }, true},
		"same rights":      {func(k *store.Key) { k.Capabilities = []string{"keys:read"} }, false},
		"name or metadata": {func(k *store.Key) { k.Name = "renamed" }, false},
	}
	callers := map[string]*auth.Principal{
		"stepped-up session": {Kind: auth.KindUser, Plan: "pro", StepUpUntil: now.Add(time.Minute)},
		"plain session":      {Kind: auth.KindUser, Plan: "pro"},
		"account key":        {Kind: auth.KindAccountKey, Plan: "pro", Capabilities: []string{"keys:write"}},
	}
	s := &Server{}
	for status, setStatus := range statuses {
		for change, c := range changes {
			for who, p := range callers {
				for _, typ := range []*keyformat.Type{account, ingest} {
					before := &store.Key{Capabilities: []string{"keys:read"}, ExpiresAt: at(24 * time.Hour)}
					setStatus(before)
					after := *before
					c.apply(&after)
					name := status + "/" + change + "/" + who + "/" + typ.Name
					err := s.mayChangeLife(p, typ, before, &after, now)
					usable := status == store.StatusActive || status == store.StatusGrace
					lifeOrRights := change != "name or metadata" && change != "same rights"
					switch {
					case !lifeOrRights:
						require.NoError(t, err, name)
					case !usable:
						require.ErrorIs(t, err, errNotUsable, name)
					case !c.widen || typ.Scope != keyformat.ScopeAccount || who == "stepped-up session":
						require.NoError(t, err, name)
					case who == "account key":
						require.True(t, apierr.IsCode(err, apierr.PermissionDenied), "%s: %v", name, err)
					default:
						require.True(t, apierr.IsCode(err, apierr.StepUpRequired), "%s: %v", name, err)
					}
				}
			}
		}
	}
}
