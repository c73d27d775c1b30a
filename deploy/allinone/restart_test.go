package allinone

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// TestAuditVerifiesAfterRestartWithGeneratedToken: `make run` generates its operator token
// on every start, and with no AUDIT_SIGNING_KEY the checkpoint key was derived from that
// token, so after a restart every chain signed before it failed verification ("forged or
// the signing key changed"). The suite now keeps the key it generates, like the pepper.
func TestAuditVerifiesAfterRestartWithGeneratedToken(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "dev-audit-signing-key")
	generated := func(o *Options, s *suite) {
		o.OperatorToken, o.SigningKeyFile = "", keyFile
		next := o.OnListening
		o.OnListening = func(addrs map[string]string, token string) {
			s.operator = token
			next(addrs, token)
		}
	}
	everyEvent := withConfig(func(_ *accounts.Config, _ *keys.Config, _ *gateway.Config, au *audit.Config) {
		au.CheckpointEvery = 1
	})
	first := startSuite(t, generated, everyEvent)
	token, _ := first.signUp("restart")
	testutil.Eventually(t, 30*time.Second, func() bool {
		r := first.Call("GET", "/v1/audit/checkpoints", token, nil)
		cps, _ := r.Body["checkpoints"].([]any)
		return r.Status == http.StatusOK && len(cps) > 0
	}, "a signed checkpoint of the sign-up")

	// The next start: the same database, another generated token.
	second := startSuite(t, generated, everyEvent, func(o *Options, s *suite) {
		o.DatabaseURL, s.dbURL = first.dbURL, first.dbURL
	})
	require.NotEqual(t, first.operator, second.operator)
	r := second.Must(http.StatusOK, second.Call("GET", "/v1/audit/verify", token, nil))
	require.Equal(t, true, r.Body["ok"], r.Raw)
}
