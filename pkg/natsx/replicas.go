package natsx

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxReplicas is the most copies JetStream keeps of a stream (its own limit).
const MaxReplicas = 5

// Replicated returns js making every stream it creates or updates on n servers
// (LATCHKEY_STREAM_REPLICAS): 1 on a single NATS, 3 on a 3-node cluster, so a node may go
// down with no message lost. A configuration that names its own Replicas keeps it. Every
// service wraps its JetStream context once, so every stream it keeps (events, audit,
// ingest) follows the one setting; consumers follow their stream (Replicas 0).
// JetStream refuses more replicas than it has servers ("insufficient resources").
func Replicated(js jetstream.JetStream, n int) jetstream.JetStream {
	return replicated{JetStream: js, n: n}
}

type replicated struct {
	jetstream.JetStream
	n int
}

func (r replicated) with(cfg jetstream.StreamConfig) jetstream.StreamConfig {
	if cfg.Replicas == 0 {
		cfg.Replicas = r.n
	}
	return cfg
}

func (r replicated) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return r.JetStream.CreateStream(ctx, r.with(cfg))
}

func (r replicated) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return r.JetStream.UpdateStream(ctx, r.with(cfg))
}

func (r replicated) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return r.JetStream.CreateOrUpdateStream(ctx, r.with(cfg))
}
