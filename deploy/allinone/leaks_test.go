package allinone

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
)

// scanner plays GitHub's secret scanning: it signs leak reports with its ECDSA P-256 key
// (SHA-256 of the raw body, base64 ASN.1 DER) and names the key by its identifier.
type scanner struct {
	id  string
	key *ecdsa.PrivateKey
}

func newScanner(t testing.TB) scanner {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return scanner{id: "github-test-1", key: k}
}

// publicKeys is LATCHKEY_SCANNING_PUBLIC_KEYS for sc, in the form GitHub publishes its
// keys (api.github.com/meta/public_keys/secret_scanning).
func (sc scanner) publicKeys(t testing.TB) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&sc.key.PublicKey)
	require.NoError(t, err)
	doc, err := json.Marshal(map[string]any{"public_keys": []map[string]any{{
		"key_identifier": sc.id, "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true,
	}}})
	require.NoError(t, err)
	return string(doc)
}

// report posts a report of tokens; signed says whether sc signs it.
func (s *suite) report(sc scanner, signed bool, tokens ...string) testutil.Reply {
	s.t.Helper()
	items := make([]map[string]string, len(tokens))
	for i, tok := range tokens {
		items[i] = map[string]string{"token": tok, "type": "latchkey_api_key", "url": "https://github.com/octo/leaky/blob/main/config.yml", "source": "content"}
	}
	body, err := json.Marshal(items)
	require.NoError(s.t, err)
	var headers []string
	if signed {
		digest := sha256.Sum256(body)
		sig, err := ecdsa.SignASN1(rand.Reader, sc.key, digest[:])
		require.NoError(s.t, err)
		headers = []string{"Github-Public-Key-Identifier", sc.id, "Github-Public-Key-Signature", base64.StdEncoding.EncodeToString(sig)}
	}
	return s.Send("POST", s.api+"/v1/secret-scanning/reports", "", string(body), headers...)
}

// TestLeakedKeyRevokedAtTheGateway, under the default and a typed profile: a key the
// gateway has cached is reported leaked in a signed report; the report answers it a true
// positive by its SHA-256, and the gateway refuses the key within milliseconds of the
// answer (the key.revoked event, not the cache's age bound). The owner sees the key
// revoked, reason exposed, with its exposed_at, and the audit log shows keys.exposed by
// secret_scanning. An unsigned report is 401 and stops nothing.
func TestLeakedKeyRevokedAtTheGateway(t *testing.T) {
	for _, profile := range []string{"default", "typed"} {
		t.Run(profile, func(t *testing.T) {
			sc := newScanner(t)
			s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
				k.KeyProfile = profile
				require.NoError(t, k.ScanningPublicKeys.UnmarshalText([]byte(sc.publicKeys(t))))
			}))
			token, account := s.signUp("leaky-" + profile)
			project := s.Project(token)
			leakedID, leaked := s.IngestKey(token, project)
			_, kept := s.IngestKey(token, project)
			body := string(tracesBody(t))
			post := func(key string) int {
				return s.Send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf").Status
			}
			require.Equal(t, 200, post(leaked))
			require.Equal(t, 200, post(kept))

			// Unsigned: refused in the envelope, and the key it names keeps working.
			s.report(sc, false, kept).RequireError(t, 401, "unauthenticated")
			require.Equal(t, 200, post(kept))

			r := s.Must(200, s.report(sc, true, leaked, "not-a-key"))
			answered := time.Now()
			var feedback []map[string]string
			require.NoError(t, json.Unmarshal([]byte(r.Raw), &feedback), r.Raw)
			require.Equal(t, []map[string]string{
				{"token_hash": sha256Hex(leaked), "token_type": "latchkey_api_key", "label": "true_positive"},
				{"token_hash": sha256Hex("not-a-key"), "token_type": "latchkey_api_key", "label": "false_positive"},
			}, feedback)
			require.NotContains(t, r.Raw, leaked, "the answer never echoes a token")

			testutil.Eventually(t, 500*time.Millisecond, func() bool { return post(leaked) == 401 }, "the gateway to refuse the leaked key")
			t.Logf("%s: the gateway refused the leaked key %s after the report's answer", profile, time.Since(answered).Round(time.Millisecond))
			require.Equal(t, 200, post(kept), "only the reported key is stopped")

			got := s.Must(200, s.Call("GET", "/v1/keys/"+leakedID, token, nil))
			require.Equal(t, "revoked", got.Str("key.status"))
			require.Equal(t, "exposed", got.Str("key.revoke_reason"))
			require.NotEmpty(t, got.Str("key.exposed_at"))

			var ev map[string]any
			testutil.Eventually(t, 10*time.Second, func() bool {
				r := s.Must(200, s.Call("GET", "/v1/audit/events?action=keys.exposed&resource_id="+url.QueryEscape(leakedID), token, nil))
				events, _ := r.Get("events").([]any)
				if len(events) == 1 {
					ev, _ = events[0].(map[string]any)
				}
				return ev != nil
			}, "the owner's audit log to show the exposure")
			require.Equal(t, account, ev["account_id"])
			require.Equal(t, "secret_scanning", testutil.Str(ev, "actor.type"))
			require.Equal(t, "ok", ev["result"])
			require.Equal(t, "revoke", testutil.Str(ev, "details.on_exposed"))
			require.Equal(t, "https://github.com/octo/leaky/blob/main/config.yml", testutil.Str(ev, "details.url"))
			v := s.Must(200, s.Call("GET", "/v1/audit/verify", token, nil))
			require.Equal(t, true, v.Get("ok"), "the chain holds the event: %s", v.Raw)
		})
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// readmeBlocks are the sh blocks of the README's section under heading, up to the next
// heading.
func readmeBlocks(t *testing.T, heading string) []string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), heading)
	require.True(t, ok, "README has the section %q", heading)
	for _, next := range []string{"\n## ", "\n### "} {
		section, _, _ = strings.Cut(section, next)
	}
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "```sh\n")
		if !ok {
			return blocks
		}
		block, after, ok := strings.Cut(rest, "```")
		require.True(t, ok)
		blocks = append(blocks, block)
		section = after
	}
}

// TestReadmeLeakReport runs the README's leaked-key walk-through, verbatim: the first
// block makes the reporter's key pair and the setting the suite then starts with; the
// second signs a report of a fresh key, which is revoked at the gateway, and an unsigned
// one is refused; the owner's audit log shows the exposure.
func TestReadmeLeakReport(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq", "openssl", "base64"} {
		_, err := exec.LookPath(tool)
		require.NoErrorf(t, err, "the walk-through needs %s", tool)
	}
	blocks := readmeBlocks(t, "\n### Leaked keys\n")
	require.Len(t, blocks, 2)
	dir := t.TempDir()
	setup := exec.Command("bash", "-euo", "pipefail", "-c", blocks[0]+`printf %s "$LATCHKEY_SCANNING_PUBLIC_KEYS"`)
	setup.Dir = dir
	keys, err := setup.Output()
	require.NoError(t, err, "%s", keys)

	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		require.NoError(t, k.ScanningPublicKeys.UnmarshalText(keys))
	}))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", blocks[1])
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "API="+s.api, "INGEST="+s.ingest)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "walk-through failed:\n%s", out)
	text := string(out)
	require.Regexp(t, `\[\{"token_hash":"[0-9a-f]{64}","token_type":"latchkey_api_key","label":"true_positive"\}\]`, text)
	require.Contains(t, text, "the gateway now answers 401")
	require.Contains(t, text, "unsigned: unauthenticated")
	require.Contains(t, text, `{"action":"keys.exposed","actor":"secret_scanning","on_exposed":"revoke"}`)
	require.NotContains(t, text, "lk_ing_", "no token is echoed")
}
