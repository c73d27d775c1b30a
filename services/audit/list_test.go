package audit_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestWalkTenThousandEvents: 10,000 events, a thousand to each timestamp, walked page by
// page: every event exactly once, newest first by (time, id); each filter alone and
// combined returns exactly the matching events; another account's events never appear.
func TestWalkTenThousandEvents(t *testing.T) {
	e := newEnv(t)
	a, b := e.accounts.api.SignUp("alice"), e.accounts.api.SignUp("bob")
	base := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	const n = 10_000
	evs := make([]*auditv1.AuditEvent, n)
	for i := range n {
		ev := event(a.AccountID, base.Add(time.Duration(i%10)*time.Millisecond))
		ev.KeyId = fmt.Sprintf("key_%d", i%5)
		ev.ResourceType = []string{"key", "project"}[i%2]
		ev.ResourceId = fmt.Sprintf("res_%d", i%10)
		ev.Action = []string{"keys.create", "keys.revoke", "projects.update"}[i%3]
		ev.Result = []string{"ok", "ok", "ok", "not_found"}[i%4]
		evs[i] = ev
	}
	e.publish(evs...)
	other := make([]*auditv1.AuditEvent, 50)
	for i := range other {
		other[i] = event(b.AccountID, base.Add(time.Duration(i%10)*time.Millisecond))
		other[i].KeyId = "key_0"
	}
	e.publish(other...)
	e.waitStored(a.AccountID, n)
	e.waitStored(b.AccountID, len(other))

	want := make(map[string]*auditv1.AuditEvent, n)
	for _, ev := range evs {
		want[ev.GetId()] = ev
	}
	walk := func(query string) []map[string]any {
		t.Helper()
		got := e.listAll(a.Token, query)
		seen := make(map[string]bool, len(got))
		var prevTime time.Time
		prevID := ""
		for i, g := range got {
			id := g["id"].(string)
			require.False(t, seen[id], "%s listed twice (%s)", id, query)
			seen[id] = true
			_, mine := want[id]
			require.True(t, mine, "%s is not one of alice's events (%s)", id, query)
			ts, err := time.Parse(time.RFC3339Nano, g["time"].(string))
			require.NoError(t, err)
			if i > 0 {
				require.True(t, ts.Before(prevTime) || ts.Equal(prevTime) && id < prevID,
					"not newest first at %d: %s %s after %s %s", i, ts, id, prevTime, prevID)
			}
			prevTime, prevID = ts, id
		}
		return got
	}
	matching := func(keep func(*auditv1.AuditEvent) bool) int {
		c := 0
		for _, ev := range evs {
			if keep(ev) {
				c++
			}
		}
		return c
	}

	all := walk("limit=1000")
	require.Len(t, all, n)
	require.Len(t, walk("limit=337"), n, "pages that split a timestamp's thousand events")
	first := all[0]
	require.Equal(t, a.AccountID, first["account_id"])
	require.NotEmpty(t, first["hash"])
	require.NotEmpty(t, first["prev_hash"])
	require.Equal(t, "192.0.2.7", first["client_ip"])
	require.Equal(t, map[string]any{"name": "ci", "note": "first"}, first["details"])

	filters := []struct {
		query string
		keep  func(*auditv1.AuditEvent) bool
	}{
		{"key_id=key_3", func(ev *auditv1.AuditEvent) bool { return ev.GetKeyId() == "key_3" }},
		{"resource_type=project", func(ev *auditv1.AuditEvent) bool { return ev.GetResourceType() == "project" }},
		{"resource_id=res_7", func(ev *auditv1.AuditEvent) bool { return ev.GetResourceId() == "res_7" }},
		{"action=keys.revoke", func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "keys.revoke" }},
		{"result=not_found", func(ev *auditv1.AuditEvent) bool { return ev.GetResult() == "not_found" }},
		{"key_id=key_1&action=keys.create&result=ok", func(ev *auditv1.AuditEvent) bool {
			return ev.GetKeyId() == "key_1" && ev.GetAction() == "keys.create" && ev.GetResult() == "ok"
		}},
		{"resource_type=key&resource_id=res_4", func(ev *auditv1.AuditEvent) bool {
			return ev.GetResourceType() == "key" && ev.GetResourceId() == "res_4"
		}},
		{"resource_type=key&resource_id=res_3", func(*auditv1.AuditEvent) bool { return false }}, // odd ids are projects
		{"key_id=key_0&resource_type=project&resource_id=res_5&action=keys.revoke&result=ok", func(ev *auditv1.AuditEvent) bool {
			return ev.GetKeyId() == "key_0" && ev.GetResourceType() == "project" && ev.GetResourceId() == "res_5" &&
				ev.GetAction() == "keys.revoke" && ev.GetResult() == "ok"
		}},
		{"key_id=key_", func(*auditv1.AuditEvent) bool { return false }}, // exact, not a prefix
		{"action=KEYS.CREATE", func(*auditv1.AuditEvent) bool { return false }},
	}
	for _, f := range filters {
		got := walk("limit=1000&" + f.query)
		require.Len(t, got, matching(f.keep), f.query)
		for _, g := range got {
			require.True(t, f.keep(want[g["id"].(string)]), "%s does not match %s", g["id"], f.query)
		}
	}

	// Bob sees his own 50 events and none of alice's.
	bobs := e.listAll(b.Token, "limit=7&key_id=key_0")
	require.Len(t, bobs, len(other))
	for _, g := range bobs {
		require.Equal(t, b.AccountID, g["account_id"])
	}
	ok, checked, bad := e.verify(b.Token)
	require.True(t, ok, bad)
	require.Equal(t, len(other), checked)
	ok, checked, bad = e.verify(a.Token)
	require.True(t, ok, bad)
	require.Equal(t, n, checked)

	// The default page is 100, and so is limit=0 (proto3 cannot tell 0 from unset).
	for _, q := range []string{"", "?limit=0"} {
		page := e.get("/v1/audit/events"+q, a.Token).OK(t)
		require.Len(t, page["events"], 100, q)
		require.NotEmpty(t, page["next_cursor"])
	}
}

// TestBadInput: every malformed or unauthorised request gets the error envelope with the
// right code, never a 500.
func TestBadInput(t *testing.T) {
	e := newEnv(t, withKeys())
	a, b := e.accounts.api.SignUp("alice"), e.accounts.api.SignUp("bob")
	for i := range 3 {
		require.True(t, e.appendEvent(event(a.AccountID, time.Now().Add(time.Duration(i)*time.Millisecond))))
		require.True(t, e.appendEvent(event(b.AccountID, time.Now())))
	}
	page := e.get("/v1/audit/events?limit=1", a.Token).OK(t)
	cursor := testutil.Str(page, "next_cursor")
	require.NotEmpty(t, cursor)
	bobCursor := testutil.Str(e.get("/v1/audit/events?limit=1", b.Token).OK(t), "next_cursor")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	require.NoError(t, err)
	flipped := slices.Clone(raw)
	flipped[3] ^= 1 // another time, same MAC
	forged := base64.RawURLEncoding.EncodeToString(flipped)
	// A position made by hand: what a cursor holds (time, id), with no MAC.
	handMade := base64.RawURLEncoding.EncodeToString(append(binary.BigEndian.AppendUint64([]byte{1}, uint64(time.Now().UnixMicro())), "aud_x"...))
	filtered := testutil.Str(e.get("/v1/audit/events?limit=1&action=keys.create", a.Token).OK(t), "next_cursor")
	require.NotEmpty(t, filtered)

	inv := apierr.InvalidArgument
	for _, c := range []struct {
		name, path, token string
		status            int
		code              apierr.Code
	}{
		{"limit -1", "/v1/audit/events?limit=-1", a.Token, 400, inv},
		{"limit 5000", "/v1/audit/events?limit=5000", a.Token, 400, inv},
		{"limit 1001", "/v1/audit/events?limit=1001", a.Token, 400, inv},
		{"limit not a number", "/v1/audit/events?limit=ten", a.Token, 400, inv},
		{"limit overflow", "/v1/audit/events?limit=99999999999", a.Token, 400, inv},
		{"garbage cursor", "/v1/audit/events?cursor=" + url.QueryEscape("not a cursor!"), a.Token, 400, inv},
		{"base64 garbage cursor", "/v1/audit/events?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdefghijklmnopqrstuvwxyz")), a.Token, 400, inv},
		{"forged cursor", "/v1/audit/events?cursor=" + forged, a.Token, 400, inv},
		{"another account's cursor", "/v1/audit/events?cursor=" + bobCursor, a.Token, 400, inv},
		{"hand-made cursor", "/v1/audit/events?cursor=" + handMade, a.Token, 400, inv},
		{"cursor reused without its filter", "/v1/audit/events?cursor=" + filtered, a.Token, 400, inv},
		{"cursor reused with another filter", "/v1/audit/events?action=keys.revoke&cursor=" + filtered, a.Token, 400, inv},
		{"unfiltered cursor reused with a filter", "/v1/audit/events?result=ok&cursor=" + cursor, a.Token, 400, inv},
		{"huge cursor", "/v1/audit/events?cursor=" + strings.Repeat("A", 5000), a.Token, 400, inv},
		{"huge filter", "/v1/audit/events?key_id=" + strings.Repeat("k", 600), a.Token, 400, inv},
		{"unknown filter", "/v1/audit/events?keyid=key_1", a.Token, 400, inv},
		{"NUL in a filter", "/v1/audit/events?action=%00", a.Token, 400, inv},
		{"no credential", "/v1/audit/events", "", 401, apierr.Unauthenticated},
		{"no credential, verify", "/v1/audit/verify", "", 401, apierr.Unauthenticated},
		{"bad session", "/v1/audit/events", "lks_" + strings.Repeat("x", 40), 401, apierr.Unauthenticated},
		{"not a key", "/v1/audit/events", "hello", 401, apierr.Unauthenticated},
		{"absurd token", "/v1/audit/events", strings.Repeat("t", 4000), 401, apierr.Unauthenticated},
		{"operator lists", "/v1/audit/events", e.operator, 400, inv},
		{"operator verifies", "/v1/audit/verify", e.operator, 400, inv},
		{"no such route", "/v1/audit/nothing", a.Token, 404, apierr.NotFound},
	} {
		e.get(c.path, c.token).RequireError(t, c.status, c.code, c.name)
	}
	e.audit.api.Call("POST", "/v1/audit/events", a.Token, map[string]any{}).
		RequireError(t, http.StatusMethodNotAllowed, apierr.MethodNotAllowed)
	e.audit.api.Call("DELETE", "/v1/audit/events", a.Token, nil).
		RequireError(t, http.StatusMethodNotAllowed, apierr.MethodNotAllowed)

	// The cursor works for its own account and filters.
	require.Len(t, e.get("/v1/audit/events?cursor="+cursor, a.Token).OK(t)["events"], 2)
	require.Len(t, e.get("/v1/audit/events?action=keys.create&cursor="+filtered, a.Token).OK(t)["events"], 2)

	// Append: the operator only, a whole event with a usable id.
	ctx := context.Background()
	userCtx := auth.OutgoingBearer(ctx, a.Token)
	opCtx := auth.OutgoingBearer(ctx, e.operator)
	_, err = e.client.Append(userCtx, &auditv1.AppendRequest{Event: event(a.AccountID, time.Now())})
	require.Equal(t, apierr.Unauthenticated, apierr.FromError(err).Code, "%v", err)
	_, err = e.client.Append(ctx, &auditv1.AppendRequest{Event: event(a.AccountID, time.Now())})
	require.Equal(t, apierr.Unauthenticated, apierr.FromError(err).Code, "%v", err)
	_, err = e.client.Append(opCtx, &auditv1.AppendRequest{})
	require.Equal(t, apierr.InvalidArgument, apierr.FromError(err).Code, "%v", err)
	noID := event(a.AccountID, time.Now())
	noID.Id = ""
	_, err = e.client.Append(opCtx, &auditv1.AppendRequest{Event: noID})
	require.Equal(t, apierr.InvalidArgument, apierr.FromError(err).Code, "%v", err)
	longID := event(a.AccountID, time.Now())
	longID.Id = strings.Repeat("x", 200)
	_, err = e.client.Append(opCtx, &auditv1.AppendRequest{Event: longID})
	require.Equal(t, apierr.InvalidArgument, apierr.FromError(err).Code, "%v", err)
	// Over-long fields are cut, not refused, so no event is lost for its size.
	big := event(a.AccountID, time.Now())
	big.ResourceId = strings.Repeat("é", 2000)
	big.UserAgent = strings.Repeat("u", 10_000)
	big.Sequence, big.Hash, big.PrevHash = 99, "chosen", "by the caller" // ignored
	require.True(t, e.appendEvent(big))
	got := e.get("/v1/audit/events?limit=1", a.Token).OK(t)["events"].([]any)[0].(map[string]any)
	require.Equal(t, big.GetId(), got["id"])
	require.Equal(t, strings.Repeat("é", 256), got["resource_id"])
	require.Len(t, got["user_agent"], 1024)
	require.Equal(t, "4", fmt.Sprint(got["sequence"]), "its place in alice's chain, not the caller's")

	ok, _, bad := e.verify(a.Token)
	require.True(t, ok, bad)
}
