package natsx

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// MaxReplicas is the most copies JetStream keeps of a stream (nats-server's limit).
const MaxReplicas = 5

// Replicated returns js, except that every stream it creates or updates is kept on
// replicas servers (LATCHKEY_STREAM_REPLICAS): 1 on a single nats-server, 3 on a cluster
// of three or more, so a stream outlives the loss of one server. Every service wraps its
// JetStream context with it, so no stream configuration in this package or elsewhere
// needs to know; a replicas below 1 leaves each configuration as it is. A stream that
// exists with another count is changed to this one on the next update (JetStream moves
// the data), and an update that asks for more replicas than the cluster has servers with
// JetStream fails with JetStream's "insufficient resources".
func Replicated(js jetstream.JetStream, replicas int) jetstream.JetStream {
	if replicas < 1 {
		return js
	}
	return replicated{JetStream: js, n: replicas}
}

type replicated struct {
	jetstream.JetStream
	n int
}

func (r replicated) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = r.n
	return r.JetStream.CreateStream(ctx, cfg)
}

func (r replicated) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = r.n
	return r.JetStream.UpdateStream(ctx, cfg)
}

func (r replicated) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = r.n
	return r.JetStream.CreateOrUpdateStream(ctx, cfg)
}
