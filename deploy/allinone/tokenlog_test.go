package allinone

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestOperatorTokenGoesToNoOutput: a suite given its operator token starts, serves
// operator calls and stops without the token in any log line of any service (debug level
// included), and does not hand it to the start-up printout; only a generated token is.
func TestOperatorTokenGoesToNoOutput(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	printed := "unset"
	s := startSuite(t, func(o *Options, s *suite) {
		s.log = zap.New(core)
		next := o.OnListening
		o.OnListening = func(addrs map[string]string, token string) {
			printed = token
			next(addrs, token)
		}
	})
	require.Empty(t, printed, "a given token is not printed")
	_, account := s.signUp("tokenlog")
	s.Must(http.StatusOK, s.Call("POST", "/v1/admin/accounts/"+account+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	s.Call("GET", "/v1/keys", s.operator+"x", nil) // a wrong one is not logged either
	require.NotZero(t, logs.Len())
	for _, l := range logs.All() {
		line := fmt.Sprintf("%s %v", l.Message, l.ContextMap())
		require.NotContains(t, line, s.operator)
	}
}
