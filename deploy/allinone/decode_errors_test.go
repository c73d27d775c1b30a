package allinone

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDecodeErrorsNeverQuoteInput: when the REST bridge cannot decode a request, the 400
// names the field or parameter at fault, never the value sent, which is where passwords
// and keys are.
func TestDecodeErrorsNeverQuoteInput(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("decode")
	const secret = "Hunter2Secret"
	for _, tc := range []struct {
		name, method, path, body, names string
	}{
		{"bare word as a value", "POST", "/v1/sessions", `{"email":"a@example.com","password":` + secret + `}`, ""},
		{"number where a string goes", "POST", "/v1/sessions", `{"email":"a@example.com","password":` + secret + `1}`, ""},
		{"bad escape", "POST", "/v1/sessions", `{"email":"a@example.com","password":"` + secret + `\q"}`, ""},
		{"string where a number goes", "GET", "/v1/keys?page_size=" + secret, "", "page_size"},
		{"string where a list goes", "POST", "/v1/projects", `{"name":"p","allowed_origins":"` + secret + `"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := s.Call(tc.method, tc.path, token, body)
			r.RequireError(t, 400, "invalid_argument")
			require.NotContains(t, r.Raw, secret[:6], "the error quotes the input")
			if tc.names != "" {
				require.Contains(t, r.Str("message"), tc.names)
			}
		})
	}
}
