package allinone

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// sessionPage is the web page that asks for and uses session keys in these tests.
const sessionPage = "https://app.example.com"

// TestSessionKeysAtTheGateway: under the default and the typed profile (with a session
// window of 2s), a page of an allowed origin gets a session key with a session or an
// ingest key of its project and sends OTLP/HTTP with it: accepted only with that Origin,
// the data on the project's subject under the session key's id; a foreign or missing
// Origin is 403 origin_not_allowed; no service takes it as a management credential; and
// once its window is over it is 401, expired.
func TestSessionKeysAtTheGateway(t *testing.T) {
	for _, c := range []struct{ profile, prefix string }{{"default", "lk_sess_"}, {"typed", "gt_session_"}} {
		t.Run(c.profile, func(t *testing.T) {
			profile := testutil.ProfileFile(t, c.profile, func(t *keyformat.Type) {
				if t.BrowserOnly() {
					t.SessionWindow = keyformat.Duration{Duration: 2 * time.Second}
				}
			})
			s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) { k.KeyProfile = profile }))
			token, account := s.signUp("browser-" + c.profile)
			project := s.Project(token, sessionPage)
			_, ingest := s.IngestKey(token, project)
			body := string(tracesBody(t))
			send := func(key string, headers ...string) testutil.Reply {
				return s.Send("POST", s.ingest+"/v1/traces", key, body, append([]string{"Content-Type", "application/x-protobuf"}, headers...)...)
			}
			mint := func(credential string) (id, secret string) {
				r := s.Must(200, s.Call("POST", "/v1/session-keys", credential, map[string]any{"project_id": project, "environment": "prd"}, "Origin", sessionPage))
				require.True(t, strings.HasPrefix(r.Str("secret"), c.prefix), "secret %q", r.Str("secret"))
				return r.Str("key.id"), r.Str("secret")
			}

			// Minted by the ingest key, used at once from the page: its window is short.
			id, key := mint(ingest)
			sent := send(key, "Origin", sessionPage, "X-Request-Id", "session-"+c.profile)
			require.Equal(t, 200, sent.Status, sent.Raw)
			require.Equal(t, sessionPage, sent.Header.Get("Access-Control-Allow-Origin"))
			send(key).RequireError(t, 403, "origin_not_allowed", "no Origin")
			send(key, "Origin", "https://evil.example.com").RequireError(t, 403, "origin_not_allowed", "foreign Origin")
			msgs := s.stored(s.ingestSubject(account, project, "prd", "traces"))
			require.Len(t, msgs, 1, "only the request with the allowed Origin got through")
			require.Equal(t, id, msgs[0].Headers().Get("Latchkey-Key-Id"))
			require.Contains(t, msgs[0].Headers().Values("Latchkey-Request-Id"), "session-"+c.profile)

			// Minted by a session: no service takes it as a management credential.
			_, other := mint(token)
			for _, m := range []struct{ method, path string }{
				{"GET", "/v1/keys"}, {"POST", "/v1/keys"}, {"POST", "/v1/session-keys"}, {"GET", "/v1/projects"}, {"GET", "/v1/audit/events"},
			} {
				var req any
				if m.method == "POST" {
					req = map[string]any{"type": "ingest", "project_id": project, "environment": "prd"}
					if m.path == "/v1/session-keys" {
						req = map[string]any{"project_id": project, "environment": "prd"}
					}
				}
				s.Call(m.method, m.path, other, req, "Origin", sessionPage).RequireError(t, 401, "unauthenticated", m.path)
			}

			// After the window: 401, expired, from the allowed Origin too. Until then each
			// poll is accepted, and lands.
			accepted := 1
			testutil.Eventually(t, 10*time.Second, func() bool {
				r := send(key, "Origin", sessionPage)
				if r.Status == 200 {
					accepted++
				}
				return r.Status == 401
			}, "the session key to expire")
			expired := send(key, "Origin", sessionPage)
			expired.RequireError(t, 401, "unauthenticated")
			require.Contains(t, expired.Message(), "expired")
			require.Len(t, s.stored(s.ingestSubject(account, project, "prd", "traces")), accepted)
		})
	}
}
