package ingest

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/latchkey/latchkey/pkg/natsx"
)

// AnonStream keeps the anonymous ingest stream's configuration, whose MaxAge follows the
// profile's anonymous key type: its data_ttl (48 h in the default and typed profiles), so
// that an anonymous key's data stays findable, to be claimed, for as long as the type
// promises and no longer (DESIGN "Seed schemes"). Until the gateway has its key types, and
// under a profile whose anonymous type names no data_ttl, the configured fallback holds
// (GATEWAY_ANON_RETENTION).
type AnonStream struct {
	js jetstream.JetStream

	retain sync.Mutex // serializes Retain
	mu     sync.Mutex // guards cfg
	cfg    jetstream.StreamConfig
}

// NewAnonStream returns the keeper of cfg, the anonymous stream of natsx.IngestStreamConfigs.
func NewAnonStream(js jetstream.JetStream, cfg jetstream.StreamConfig) *AnonStream {
	return &AnonStream{js: js, cfg: cfg}
}

// Name is the stream's name.
func (a *AnonStream) Name() string { return a.config().Name }

// Ensure creates the stream, or updates it to the current configuration (for a
// natsx.Keeper: natsx.StreamResource).
func (a *AnonStream) Ensure(ctx context.Context) (jetstream.Stream, error) {
	return a.js.CreateOrUpdateStream(ctx, a.config())
}

// Retain makes maxAge the stream's MaxAge, updating the stream when it changes; a maxAge
// of zero or less (the type names no data_ttl) keeps what holds. The duplicate window
// shrinks with a MaxAge shorter than it, which JetStream requires. The new configuration
// holds only once JetStream took it: after an error, the next Retain tries again.
func (a *AnonStream) Retain(ctx context.Context, maxAge time.Duration) error {
	a.retain.Lock() // one update at a time, without blocking Ensure meanwhile
	defer a.retain.Unlock()
	cfg := a.config()
	if maxAge <= 0 || maxAge == cfg.MaxAge {
		return nil
	}
	cfg = natsx.WithRetention(cfg, maxAge)
	if _, err := a.js.CreateOrUpdateStream(ctx, cfg); err != nil {
		return err
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	return nil
}

func (a *AnonStream) config() jetstream.StreamConfig {
	a.mu.Lock()
	defer a.mu.Unlock()
	cfg := a.cfg
	cfg.Subjects = append([]string(nil), cfg.Subjects...)
	return cfg
}
