package allinone

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// TestClaimFlow is the anonymous-first scheme end to end, under each profile that has it
// (DESIGN "Seed schemes"): an SDK's anonymous key sends data before anyone signs up; after
// sign-up the claim links that data to the account (messages_linked is what was sent) and
// reveals a regular key; the anonymous key keeps working through the claim grace, its data
// now the account's and every answer carrying the notice, and afterwards is expired; the
// new key rotates with both keys working and is revoked at once at the gateway. The claim
// grace is cut to seconds by the profile, not waited out at its real length.
func TestClaimFlow(t *testing.T) {
	for _, tc := range []struct{ profile, anonPrefix, keyPrefix string }{
		{"default", "lk_anon_", "lk_ing_"},
		{"typed", "gt_anon_", "gt_dev_"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			const grace = 4 * time.Second
			profile := testutil.ProfileFile(t, tc.profile, func(t *keyformat.Type) {
				if t.Anonymous {
					t.ClaimGrace = keyformat.Duration{Duration: grace}
				}
			})
			s := startSuite(t, withConfig(func(_ *accounts.Config, k *keys.Config, _ *gateway.Config, _ *audit.Config) {
				k.KeyProfile = profile
			}))
			send := func(key, signal, requestID string) (status int, notice string) {
				t.Helper()
				r := s.Send("POST", s.ingest+"/v1/"+signal, key, string(bodyOf(t, signal)),
					"Content-Type", "application/x-protobuf", "X-Request-Id", requestID)
				return r.Status, r.Header.Get("Latchkey-Key-Notice")
			}

			// Before sign-up: an anonymous key, and data sent with it.
			anon := s.Must(200, s.Call("POST", "/v1/anonymous-keys", "", map[string]any{}))
			anonKey, anonID := anon.Str("secret"), anon.Str("key.id")
			require.True(t, strings.HasPrefix(anonKey, tc.anonPrefix), anonKey)
			sent := map[string][]string{}
			for i, signal := range []string{"traces", "traces", "metrics", "logs"} {
				id := "before-claim-" + signal + "-" + string(rune('a'+i))
				status, notice := send(anonKey, signal, id)
				require.Equal(t, 200, status)
				require.Empty(t, notice, "no notice before the claim")
				sent[signal] = append(sent[signal], id)
			}
			require.Len(t, s.storedIn(natsx.AnonIngestStream(s.ns), natsx.AnonKeySubjects(s.ns, anonID)), 4)

			// Sign-up and claim: the data is linked, then the new key is revealed.
			token, account := s.signUp("claimer")
			project := s.Project(token)
			claimedAt := time.Now()
			c := s.Must(200, s.Call("POST", "/v1/keys:claim", token, map[string]any{
				"anonymous_key": anonKey, "project_id": project, "environment": "prd",
			}))
			newKey, newID := c.Str("secret"), c.Str("key.id")
			require.True(t, strings.HasPrefix(newKey, tc.keyPrefix), newKey)
			require.Equal(t, anonID, c.Str("claimed", "anonymous_key_id"))
			require.EqualValues(t, 4, c.Get("claimed", "messages_linked"))
			graceUntil, err := time.Parse(time.RFC3339Nano, c.Str("claimed", "grace_until"))
			require.NoError(t, err)
			require.WithinDuration(t, claimedAt.Add(grace), graceUntil, 2*time.Second)
			for signal, ids := range sent {
				require.ElementsMatch(t, ids, s.storedRequestIDs(s.ingestSubject(account, project, "prd", signal)), signal)
			}

			// A second claim, by anyone, is refused.
			other, _ := s.signUp("latecomer")
			s.Call("POST", "/v1/keys:claim", other, map[string]any{
				"anonymous_key": anonKey, "project_id": s.Project(other), "environment": "prd",
			}).RequireError(t, 409, "already_claimed")

			// In the grace: the anonymous key works, its data is the account's, and every
			// answer says so; the new key works with no notice.
			// Gateways drop the key on key.claimed, moments after the claim answers; what
			// they took before is linked by the claim's sweep, so nothing is lost either way.
			wantNotice := "claimed; grace_until=" + graceUntil.UTC().Truncate(time.Second).Format(time.RFC3339)
			var after []string
			require.Eventually(t, func() bool {
				id := "after-claim-anon-" + strconv.Itoa(len(after))
				status, notice := send(anonKey, "traces", id)
				require.Equal(t, 200, status)
				after = append(after, id)
				return notice == wantNotice
			}, 5*time.Second, 10*time.Millisecond)
			require.Eventually(t, func() bool {
				stored := s.storedRequestIDs(s.ingestSubject(account, project, "prd", "traces"))
				return len(stored) == len(sent["traces"])+len(after) && slices.Contains(stored, after[len(after)-1])
			}, 5*time.Second, 20*time.Millisecond, "every request sent after the claim is the account's, once")
			status, notice := send(newKey, "traces", "after-claim-new")
			require.Equal(t, 200, status)
			require.Empty(t, notice)

			// Rotation: both keys work through the rotation grace; revocation is instant.
			rot := s.Must(200, s.Call("POST", "/v1/keys/"+newID+":rotate", token, map[string]any{}))
			rotated := rot.Str("secret")
			for _, k := range []string{newKey, rotated} {
				status, _ := send(k, "logs", "rotation-"+k[:12])
				require.Equal(t, 200, status)
			}
			s.Must(200, s.Call("POST", "/v1/keys/"+rot.Str("key.id")+":revoke", token, map[string]any{"wait_for_gateways": true}))
			status, _ = send(rotated, "logs", "after-revoke")
			require.Equal(t, 401, status)

			// After the claim grace the anonymous key is expired.
			require.Eventually(t, func() bool {
				r := s.Send("POST", s.ingest+"/v1/traces", anonKey, string(bodyOf(t, "traces")), "Content-Type", "application/x-protobuf")
				return r.Status == 401 && r.Str("error") == "unauthenticated" && r.Str("reason") == "expired"
			}, grace+10*time.Second, 100*time.Millisecond)
			require.Equal(t, "expired", s.Verify(s.operator, anonKey).Str("code"))

			// The account's audit log records the claim.
			require.Eventually(t, func() bool {
				r := s.Call("GET", "/v1/audit/events?action=keys.claim", token, nil)
				events, _ := r.Get("events").([]any)
				return r.Status == 200 && len(events) == 1
			}, 10*time.Second, 50*time.Millisecond)
		})
	}
}

// bodyOf is a small OTLP protobuf export request of signal: "traces", "metrics" or "logs".
func bodyOf(t testing.TB, signal string) []byte {
	t.Helper()
	var (
		b   []byte
		err error
	)
	switch signal {
	case "traces":
		return tracesBody(t)
	case "metrics":
		req := pmetricotlp.NewExportRequest()
		m := req.Metrics().ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("requests")
		m.SetEmptySum().DataPoints().AppendEmpty().SetIntValue(1)
		b, err = req.MarshalProto()
	default:
		req := plogotlp.NewExportRequest()
		req.Logs().ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetStr("hello")
		b, err = req.MarshalProto()
	}
	require.NoError(t, err)
	return b
}
