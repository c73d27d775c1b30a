package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/server"
)

// How the gateway words a refusal is decided here and nowhere else (DESIGN "Seed
// schemes", gateway error bodies), by the profile's gateway_errors (Config.Errors):
//   - The status and the machine code are always those of docs/rest.md: a profile words
//     refusals, it does not change them.
//   - The message is the profile's for the code when it names one ("unauthenticated":
//     "Missing or invalid API key"), else the gateway's own.
//   - Over HTTP the body is Latchkey's envelope (server.WriteError), or under the shape
//     "error" exactly {"error": "<message>"}: one space after the colon, no newline,
//     nothing else (DeepTracer's bodies, byte for byte). Content-Type is application/json
//     either way, and the headers stay: X-Request-Id (the edge's), Retry-After,
//     WWW-Authenticate.
//   - Over gRPC the status keeps its code and ErrorInfo and carries the message.
//
// Every HTTP refusal of the ingest listener goes through writeError: the handler's (fail,
// an unknown route or method) and the edge's own (ErrorWriter, server.EdgeConfig's
// WriteError: 431, 413, a bad path, a panic's 500).

// gatewayErrors is the profile's gateway_errors as loaded now; the zero value (the
// envelope) when c has no source.
func (c Config) gatewayErrors() keyformat.GatewayErrors {
	if c.Errors == nil {
		return keyformat.GatewayErrors{}
	}
	return c.Errors()
}

// worded is e with the profile's message for its code, when g names one; e otherwise.
func worded(e *apierr.Error, g keyformat.GatewayErrors) *apierr.Error {
	m, ok := g.Messages[string(e.Code)]
	if !ok || m == e.Message {
		return e
	}
	w := *e
	w.Message = m
	return &w
}

// writeError writes e as c's profile says.
func (c Config) writeError(w http.ResponseWriter, r *http.Request, e *apierr.Error) {
	g := c.gatewayErrors()
	e = worded(e, g)
	if g.Shape != keyformat.ShapeError {
		server.WriteError(w, r, e)
		return
	}
	body := errorBody(e.Message)
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(apierr.RetryAfterSeconds(e.RetryAfter)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(apierr.HTTPStatus(e.Code))
	_, _ = w.Write(body)
}

// errorBody is the body of the shape "error": {"error": "<message>"}, the message a JSON
// string as written in the profile (no HTML escaping).
func errorBody(message string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"error": `)
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(message) // a string always encodes; invalid UTF-8 becomes U+FFFD
	b.Truncate(b.Len() - 1) // Encode's newline
	b.WriteByte('}')
	return b.Bytes()
}

// grpcError is e as a gRPC answer words it: the profile's message, the same code.
func (c Config) grpcError(e *apierr.Error) *apierr.Error {
	return worded(e, c.gatewayErrors())
}

// ErrorWriter is cfg's rule as server.EdgeConfig.WriteError takes it, so that the ingest
// listener's edge words its own refusals as the handler does.
func ErrorWriter(cfg Config) func(http.ResponseWriter, *http.Request, *apierr.Error) {
	return cfg.withDefaults().writeError
}
