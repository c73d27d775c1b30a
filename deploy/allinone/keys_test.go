package allinone

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestQuickstart walks the README's quickstart: sign up, project, key, list, read, verify,
// rotate, revoke.
func TestQuickstart(t *testing.T) {
	s := startSuite(t)
	token, accountID := s.signUp("quickstart")
	require.NotEmpty(t, token)
	project := s.Project(token, "https://app.example.com")

	created := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd", "name": "production-web",
		"metadata": map[string]string{"team": "web"},
	}))
	secret, id := created.Str("secret"), created.Str("key.id")
	require.True(t, strings.HasPrefix(secret, "lk_ing_"), secret)
	require.Equal(t, "active", created.Str("key.status"))
	require.Equal(t, accountID, created.Str("key.account_id"))
	require.Equal(t, secret[:len("lk_ing_")+8], created.Str("key.display_prefix"))
	require.Equal(t, "web", created.Str("key.metadata.team"))

	// The secret is shown once: never again in a read or a listing.
	got := s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil))
	require.NotContains(t, got.Raw, secret)
	require.NotContains(t, got.Raw, secret[len("lk_ing_")+8:])
	require.Equal(t, id, got.Str("key.id"))
	list := s.Must(200, s.Call("GET", "/v1/keys?project_id="+project, token, nil))
	require.NotContains(t, list.Raw, secret[len("lk_ing_")+8:])
	require.Len(t, list.Get("keys"), 1)

	v := s.Verify(token, secret, "origin", "https://app.example.com", "capability", "ingest")
	require.Equal(t, true, v.Get("valid"), v.Raw)
	require.Equal(t, "ok", v.Str("code"))
	require.Equal(t, []any{"https://app.example.com"}, v.Get("allowed_origins"))
	require.Equal(t, "origin_not_allowed", s.Verify(token, secret, "origin", "https://evil.example.com").Str("code"))
	require.Equal(t, "insufficient_capability", s.Verify(token, secret, "capability", "keys:write").Str("code"))

	rotated := s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}))
	secret2, id2 := rotated.Str("secret"), rotated.Str("key.id")
	require.NotEqual(t, secret, secret2)
	require.Equal(t, id, rotated.Str("previous.id"))
	require.Equal(t, "grace", rotated.Str("previous.status"))
	require.Equal(t, id2, rotated.Str("previous.rotated_to_id"))
	graceUntil, err := time.Parse(time.RFC3339Nano, rotated.Str("previous.grace_until"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), graceUntil, time.Minute, "the default grace is 24h")
	require.Equal(t, true, s.Verify(token, secret).Get("valid"), "the old key works during grace")
	require.Equal(t, true, s.Verify(token, secret2).Get("valid"))

	revoked := s.Must(200, s.Call("POST", "/v1/keys/"+id2+":revoke", token, map[string]any{"reason": "leaked"}))
	require.NotEmpty(t, revoked.Str("key.revoked_at"))
	require.Equal(t, "leaked", revoked.Str("key.revoke_reason"))
	require.Equal(t, "revoked", revoked.Str("key.status"))
	v = s.Verify(token, secret2)
	require.Equal(t, false, v.Get("valid"))
	require.Equal(t, "revoked", v.Str("code"))

	// Revoking again changes nothing and is not an error.
	again := s.Must(200, s.Call("POST", "/v1/keys/"+id2+":revoke", token, map[string]any{"reason": "other"}))
	require.Equal(t, revoked.Str("key.revoked_at"), again.Str("key.revoked_at"))
	require.Equal(t, "leaked", again.Str("key.revoke_reason"))

	s.Call("GET", "/v1/keys", "", nil).RequireError(t, 401, "unauthenticated")
}

// TestKeysOfADeletedProject: once its project is deleted, a key stops working at the
// gateway (by the project.deleted event, though the keys service caches projects for an
// hour here), cannot be rotated, and no key can be created for the project.
func TestKeysOfADeletedProject(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.DirectoryTTL = time.Hour
	}))
	token, _ := s.signUp("deleted")
	project := s.Project(token)
	id, key := s.IngestKey(token, project)
	body := string(tracesBody(t))
	post := func() testutil.Reply {
		return s.Send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf")
	}
	s.Must(200, post())
	s.Must(200, s.Call("DELETE", "/v1/projects/"+project, token, nil))
	testutil.Eventually(t, 2*time.Second, func() bool { return post().Status == 401 }, "the gateway to refuse the deleted project's key")
	post().RequireError(t, 401, "unauthenticated")

	r := s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})
	r.RequireError(t, 404, "not_found")
	require.Contains(t, r.Str("message"), project)
	k := s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil))
	require.Equal(t, "active", k.Str("key.status"), "a refused rotation changes nothing")
	require.Empty(t, k.Str("key.rotated_to_id"))
	require.Len(t, s.Must(200, s.Call("GET", "/v1/keys", token, nil)).Get("keys"), 1, "and mints nothing")
	s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd",
	}).RequireError(t, 404, "not_found")
}

// TestNoKeyOutlivesItsEnvironment: a project cannot drop an environment that live keys
// (active or in rotation grace) are bound to: 409 naming them, nothing changed, and the
// key goes on working at the gateway. Once they are revoked the environment can go, no
// key can be minted in it, and adding it back revives nothing. A key whose environment
// the project no longer lists (as one minted while the drop was under way would be) does
// not verify, nor once the environment is added back, nor can it be rotated.
func TestNoKeyOutlivesItsEnvironment(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.DirectoryTTL = time.Hour
	}))
	token, _ := s.signUp("envs")
	project := s.Project(token)
	prd, key := s.IngestKey(token, project)
	graced, _ := s.IngestKey(token, project)
	successor := s.Must(200, s.Call("POST", "/v1/keys/"+graced+":rotate", token, map[string]any{"grace_period_seconds": 3600})).Str("key.id")
	s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}))
	body := string(tracesBody(t))
	post := func(key string) testutil.Reply {
		return s.Send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf")
	}
	s.Must(200, post(key))

	drop := map[string]any{"environments": []string{"dev", "stg"}}
	r := s.Call("PATCH", "/v1/projects/"+project, token, drop)
	r.RequireError(t, 409, "conflict")
	for _, id := range []string{prd, graced, successor} {
		require.Contains(t, r.Str("message"), id)
	}
	require.Contains(t, r.Str("message"), "prd")
	require.Equal(t, []any{"dev", "stg", "prd"}, s.Must(200, s.Call("GET", "/v1/projects/"+project, token, nil)).Get("project.environments"))
	s.Must(200, post(key))
	// Adding an environment, or dropping one no live key uses, asks nothing of anyone.
	s.Must(200, s.Call("PATCH", "/v1/projects/"+project, token, map[string]any{"environments": []string{"dev", "stg", "prd", "qa"}}))
	s.Must(200, s.Call("PATCH", "/v1/projects/"+project, token, map[string]any{"environments": []string{"dev", "stg", "prd"}}))

	for _, id := range []string{prd, graced, successor} {
		s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
	}
	s.Must(200, s.Call("PATCH", "/v1/projects/"+project, token, drop))
	post(key).RequireError(t, 401, "unauthenticated")
	s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd"}).RequireError(t, 400, "invalid_argument")
	s.Must(200, s.Call("PATCH", "/v1/projects/"+project, token, map[string]any{"environments": []string{"dev", "stg", "prd"}}))
	post(key).RequireError(t, 401, "unauthenticated")

	// A stg key, then stg gone from under it behind the API's back (the end state of a key
	// minted while the drop was under way): the key does not verify.
	stg := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "stg"})).Str("secret")
	require.Equal(t, "ok", s.Verify(s.operator, stg).Str("code"))
	conn, err := pgx.Connect(context.Background(), s.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `UPDATE accounts.projects SET environments = array_remove(environments, 'stg') WHERE id = $1`, project)
	require.NoError(t, err)
	require.Equal(t, "not_found", s.Verify(s.operator, stg).Str("code"))
	// Adding it back revives nothing: the key was minted in a stay of stg that has ended.
	s.Must(200, s.Call("PATCH", "/v1/projects/"+project, token, map[string]any{"environments": []string{"dev", "stg", "prd"}}))
	require.Equal(t, "not_found", s.Verify(s.operator, stg).Str("code"))
	post(stg).RequireError(t, 401, "unauthenticated")
	stgID := s.Must(200, s.Call("GET", "/v1/keys?environment=stg", token, nil)).Get("keys")
	s.Call("POST", "/v1/keys/"+stgID.([]any)[0].(map[string]any)["id"].(string)+":rotate", token, map[string]any{}).RequireError(t, 409, "conflict")
	fresh := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "stg"})).Str("secret")
	require.Equal(t, "ok", s.Verify(s.operator, fresh).Str("code"), "a key minted in the new stay works")
	s.Must(200, post(fresh))
}

// TestNoKeySurvivesARacedDrop: keys minted while their environment is being dropped may
// slip past the drop's check for live keys, but none of them ever works again: not while
// the environment is gone, and not after it is added back (README, "Keys/projects").
// Each round mints three keys in e2 while e2 is dropped, then adds e2 back and asks, at
// the keys service and at the gateway, about every key minted so far.
func TestNoKeySurvivesARacedDrop(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, _ *keysConfig, g *gatewayConfig, _ *auditConfig) {
		g.FailedAuthBurst = 100_000 // every ingest here fails, from one address
	}))
	token, _ := s.signUp("envrace")
	project := s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{
		"name": "race", "environments": []string{"prd", "e2"},
	})).Str("project.id")
	body := string(tracesBody(t))
	both := map[string]any{"environments": []string{"prd", "e2"}}
	dropE2 := map[string]any{"environments": []string{"prd"}}
	var minted []string // secrets
	raced := 0          // rounds whose drop passed with keys minted around it
	for round := range 25 {
		creates := make([]testutil.Reply, 3)
		var drop testutil.Reply
		var wg sync.WaitGroup
		for i := range creates {
			wg.Add(1)
			go func() {
				defer wg.Done()
				creates[i] = s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "e2"})
			}()
		}
		wg.Add(1)
		go func() { defer wg.Done(); drop = s.Call("PATCH", "/v1/projects/"+project, token, dropE2) }()
		wg.Wait()
		var ids []string
		for _, c := range creates {
			if c.Status == 400 {
				c.RequireError(t, 400, "invalid_argument") // minted after the drop
				continue
			}
			s.Must(200, c)
			ids = append(ids, c.Str("key.id"))
			minted = append(minted, c.Str("secret"))
		}
		switch drop.Status {
		case 409: // the keys were live before the drop asked: revoke them and drop again
			drop.RequireError(t, 409, "conflict")
			for _, id := range ids {
				s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
			}
			s.Must(200, s.Call("PATCH", "/v1/projects/"+project, token, dropE2))
		default:
			s.Must(200, drop)
			if len(ids) > 0 {
				raced++
			}
		}
		s.Must(200, s.Call("PATCH", "/v1/projects/"+project, token, both))
		for _, secret := range minted {
			require.NotEqual(t, "ok", s.Verify(s.operator, secret).Str("code"), "round %d: a key minted before e2 was dropped verifies after it is added back", round)
		}
		for _, secret := range minted[max(0, len(minted)-len(ids)):] {
			r := s.Send("POST", s.ingest+"/v1/traces", secret, body, "Content-Type", "application/x-protobuf")
			r.RequireError(t, 401, "unauthenticated")
		}
	}
	t.Logf("%d of 25 rounds dropped e2 with keys minted around the drop", raced)
	// The round's keys were asked about once each; ask the gateway about all of them again,
	// now that every project.updated event has long been applied.
	for _, secret := range minted {
		s.Send("POST", s.ingest+"/v1/traces", secret, body, "Content-Type", "application/x-protobuf").RequireError(t, 401, "unauthenticated")
	}
}
