package keyformat

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
)

// Shapes of the gateway's error bodies (GatewayErrors.Shape).
const (
	// ShapeEnvelope is Latchkey's error envelope (docs/rest.md): {error: <code>, message,
	// request_id, documentation_url}. The default.
	ShapeEnvelope = "envelope"
	// ShapeError is {"error": "<message>"} and nothing else, as some hosted products
	// answer (DeepTracer: {"error": "Missing or invalid API key"}).
	ShapeError = "error"
)

// gatewayCodeRE is what a code of GatewayErrors.Messages must look like: a machine code.
var gatewayCodeRE = regexp.MustCompile(`^[a-z][a-z_]*$`)

// GatewayErrors is how a profile's ingest gateways word their refusals (DESIGN "Seed
// schemes", gateway error bodies), set in the profile file's "gateway_errors" object:
//
//	"gateway_errors": {"shape": "error", "messages": {"unauthenticated": "Missing or invalid API key"}}
//
// The zero value is Latchkey's own: the envelope, with the gateway's own messages.
type GatewayErrors struct {
	// Shape is ShapeEnvelope (or empty) or ShapeError.
	Shape string `json:"shape,omitempty"`
	// Messages replace the gateway's message for a machine code ("unauthenticated",
	// "origin_not_allowed", …); a code not listed keeps the gateway's message. The status
	// and the code stay what docs/rest.md says.
	Messages map[string]string `json:"messages,omitempty"`
}

// validate reports every rule g breaks.
func (g GatewayErrors) validate() error {
	var errs []error
	switch g.Shape {
	case "", ShapeEnvelope, ShapeError:
	default:
		errs = append(errs, fmt.Errorf("keyformat: gateway_errors: shape %q must be %q or %q", g.Shape, ShapeEnvelope, ShapeError))
	}
	codes := make([]string, 0, len(g.Messages))
	for c := range g.Messages {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		if !gatewayCodeRE.MatchString(c) {
			errs = append(errs, fmt.Errorf("keyformat: gateway_errors: code %q must match %s", c, gatewayCodeRE))
		}
		if m := g.Messages[c]; m == "" || len(m) > 512 {
			errs = append(errs, fmt.Errorf("keyformat: gateway_errors: the message of %q must be 1 to 512 bytes", c))
		}
	}
	return errors.Join(errs...)
}

// GatewayErrors returns how the profile's gateways word their refusals; the zero value
// for Latchkey's own envelope.
func (r *Registry) GatewayErrors() GatewayErrors {
	g := r.gatewayErrors
	if g.Messages != nil {
		m := make(map[string]string, len(g.Messages))
		for k, v := range g.Messages {
			m[k] = v
		}
		g.Messages = m
	}
	return g
}
