// Package ingest is the gateway's data path: it decodes and validates OTLP (HTTP and gRPC)
// and plain JSON logs, authorizes each request through grant.Authorizer, and publishes the
// accepted payload to JetStream, answering success only once JetStream has acknowledged it.
package ingest

import (
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxBodyBytes   int64 = 4 << 20
	DefaultPublishTimeout       = 2 * time.Second
)

// Config configures the ingest handlers and the publisher.
type Config struct {
	// Namespace prefixes every subject and stream name; natsx.DefaultNamespace when empty.
	Namespace string
	// MaxBodyBytes bounds a request body both as sent and after gunzip (4 MiB when zero).
	// The NATS server's max_payload must be at least this, or larger bodies are refused
	// with 413 at publish time.
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for JetStream's ack (2 s when zero); past it the
	// client gets 503 / UNAVAILABLE and retries.
	PublishTimeout time.Duration
	// MergeClientRequestIDs merges requests whose client sent its own X-Request-Id like
	// any other, without a Nats-Msg-Id. Off, each such request is sent alone and
	// JetStream deduplicates a retry of it; turn it on behind a proxy that stamps every
	// request with an id (Envoy, nginx's $request_id), where a retry gets a new id anyway
	// and merging would otherwise never happen.
	MergeClientRequestIDs bool
	// Logger receives failures, with the request id; never a key. No-op when nil.
	Logger *zap.Logger
	// Errors is how the key profile words the gateway's refusals (its gateway_errors: a
	// message per machine code, and the shape of an HTTP error body), asked at each
	// refusal so that it follows the key types as they load (verifier.GatewayErrors). Nil
	// for Latchkey's envelope with the gateway's own messages. See errors.go.
	Errors func() keyformat.GatewayErrors
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	if !validToken(c.Namespace) {
		return fmt.Errorf("ingest: namespace %q must be one NATS subject token (no dots, wildcards or spaces)", c.Namespace)
	}
	if c.MaxBodyBytes < 0 {
		return fmt.Errorf("ingest: MaxBodyBytes %d must not be negative", c.MaxBodyBytes)
	}
	if c.PublishTimeout < 0 {
		return fmt.Errorf("ingest: PublishTimeout %s must not be negative", c.PublishTimeout)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = natsx.DefaultNamespace
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// validToken reports whether s can stand as one NATS subject token.
func validToken(s string) bool {
	if s == "" {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f
	})
}
