package allinone

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/server"
)

// TestOversizedHeadersGetTheEnvelope: on the REST listener and on the gateway's, a header
// section over server.MaxHeaderBytes is 431 request_header_too_large in the envelope with
// X-Request-Id (the client's own id echoed); one just under the limit is served. Only a
// flood past what net/http reads at all gets its plain 431.
func TestOversizedHeadersGetTheEnvelope(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("headers")
	over := strings.Repeat("a", server.MaxHeaderBytes)
	under := strings.Repeat("a", server.MaxHeaderBytes/2)
	for i, c := range []struct{ name, method, url, token string }{
		{"rest", "GET", s.api + "/v1/keys", token},
		{"rest, no credentials", "POST", s.api + "/v1/keys", ""},
		{"rest healthz", "GET", s.api + "/healthz", ""},
		{"gateway", "POST", s.ingest + "/v1/logs", "lk_ing_whatever"},
		{"gateway healthz", "GET", s.ingest + "/healthz", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("hdr-%d", i)
			r := s.Send(c.method, c.url, c.token, nil, "X-Padding", over, "X-Request-Id", id)
			r.RequireError(t, http.StatusRequestHeaderFieldsTooLarge, "request_header_too_large")
			require.Equal(t, id, r.Header.Get("X-Request-Id"))

			r = s.Send(c.method, c.url, c.token, nil, "X-Padding", under)
			require.NotEqual(t, http.StatusRequestHeaderFieldsTooLarge, r.Status, r.Raw)
			require.Less(t, r.Status, 500, r.Raw)
		})
	}
	// Many small headers count as much as one big one.
	var headers []string
	for i := range 2000 {
		headers = append(headers, fmt.Sprintf("X-Many-%d", i), "0123456789")
	}
	s.Send("GET", s.api+"/v1/keys", token, nil, headers...).RequireError(t, 431, "request_header_too_large")

	// Past what net/http reads, it answers itself (plain text): still 431, never a hang.
	r := s.Send("GET", s.api+"/v1/keys", token, nil, "X-Padding", strings.Repeat(over, 3))
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, r.Status)
}
