package natsx

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Resource is a JetStream stream or durable consumer a service cannot work without. A
// Keeper looks it up, creates it when it is missing, and tells whoever follows it when it
// was made anew (deleted and created again, by this service or another).
type Resource struct {
	// Name names it in logs: "stream LATCHKEY_EVENTS", "consumer LATCHKEY_AUDIT/audit".
	Name string
	// Lookup returns when the resource was created, or an error for which Missing holds
	// when it does not exist (any other error: JetStream could not say).
	Lookup func(ctx context.Context) (time.Time, error)
	// Create creates or updates it and returns when it was created.
	Create func(ctx context.Context) (time.Time, error)
	// Recreated, if set, is called (from the keeper's goroutine) when the resource is found
	// to be a new one since the last check: whatever followed the old one (an ordered
	// consumer, a pull subscription) must start again.
	Recreated func()
}

// StreamResource is a stream that ensure creates or updates (e.g. EnsureEventsStream).
func StreamResource(js jetstream.JetStream, name string, ensure func(context.Context) (jetstream.Stream, error)) Resource {
	return Resource{
		Name: "stream " + name,
		Lookup: func(ctx context.Context) (time.Time, error) {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return time.Time{}, err
			}
			return s.CachedInfo().Created, nil
		},
		Create: func(ctx context.Context) (time.Time, error) {
			s, err := ensure(ctx)
			if err != nil {
				return time.Time{}, err
			}
			return s.CachedInfo().Created, nil
		},
	}
}

// StreamConfigResource is a stream created or updated with cfg.
func StreamConfigResource(js jetstream.JetStream, cfg jetstream.StreamConfig) Resource {
	return StreamResource(js, cfg.Name, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
}

// EventsStreamResource is the namespace's events stream (EnsureEventsStream).
func EventsStreamResource(js jetstream.JetStream, ns string) Resource {
	return StreamResource(js, EventsStream(ns), func(ctx context.Context) (jetstream.Stream, error) {
		return EnsureEventsStream(ctx, js, ns)
	})
}

// AuditStreamResource is the namespace's audit stream (EnsureAuditStream).
func AuditStreamResource(js jetstream.JetStream, ns string) Resource {
	return StreamResource(js, AuditStream(ns), func(ctx context.Context) (jetstream.Stream, error) {
		return EnsureAuditStream(ctx, js, ns)
	})
}

// ConsumerResource is a durable consumer (cfg.Durable) on stream, which must be kept by
// the same keeper, listed before it. created, if set, is handed each consumer the keeper
// creates.
func ConsumerResource(js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig, created func(jetstream.Consumer)) Resource {
	return Resource{
		Name: "consumer " + stream + "/" + cfg.Durable,
		Lookup: func(ctx context.Context) (time.Time, error) {
			c, err := js.Consumer(ctx, stream, cfg.Durable)
			if err != nil {
				return time.Time{}, err
			}
			return c.CachedInfo().Created, nil
		},
		Create: func(ctx context.Context) (time.Time, error) {
			c, err := js.CreateOrUpdateConsumer(ctx, stream, cfg)
			if err != nil {
				return time.Time{}, err
			}
			if created != nil {
				created(c)
			}
			return c.CachedInfo().Created, nil
		},
	}
}

// Missing reports whether err says a stream or consumer does not exist: a lookup's "not
// found", a pull consumer's "deleted", or a publish nobody answered (no stream claims the
// subject).
func Missing(err error) bool {
	return err != nil && (errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrConsumerDoesNotExist) ||
		errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders))
}

// DefaultCheckEvery is how often a Keeper looks its resources up when nothing prompts it.
const DefaultCheckEvery = time.Second

// checkTimeout bounds one round of lookups and creations.
const checkTimeout = 5 * time.Second

// DefaultSettle is how long a Keeper waits between finding a stream missing and making it.
// nats-server (2.9 at least) finishes deleting a stream's files after it has answered the
// delete: a stream of the same name made at once can lose its first message block to that
// clean-up, and then refuses every message ("error opening msg block file").
const DefaultSettle = 250 * time.Millisecond

// Keeper keeps a service's streams and durable consumers in existence: it checks them
// every CheckEvery, at once after a reconnect and whenever Notice is told of an error that
// says one is missing, and recreates what is gone (a stream deleted, a nats-server
// restarted with an empty store). Ready is false from a disconnect, or from the moment
// something is found missing, until every resource is there again: wire it into the
// service's readiness.
type Keeper struct {
	nc  *nats.Conn
	log *zap.Logger
	res []Resource
	// CheckEvery is how often resources are looked up unprompted; set before Run.
	CheckEvery time.Duration
	// Settle is the wait between finding a resource missing and making it (DefaultSettle).
	Settle time.Duration

	mu      sync.Mutex // one round at a time; guards created
	created []time.Time
	ready   atomic.Bool
	failing atomic.Bool // the last round failed (logged once per failure spell)
	kick    chan struct{}
}

// NewKeeper returns a keeper of res on js's connection; call Ensure, then Run.
func NewKeeper(js jetstream.JetStream, log *zap.Logger, res ...Resource) *Keeper {
	if log == nil {
		log = zap.NewNop()
	}
	return &Keeper{
		nc: js.Conn(), log: log, res: res, CheckEvery: DefaultCheckEvery, Settle: DefaultSettle,
		created: make([]time.Time, len(res)), kick: make(chan struct{}, 1),
	}
}

// KeepOutboxStreams returns a keeper of the events and audit streams, where services
// with an outbox (pkg/outbox) publish, after making sure of both once: call its Run, and
// use its Ready in the service's readiness. The relay needs no hook: its failed publishes
// stay in the outbox and go out on its next try, once the keeper has made the stream again.
// It waits for the streams up to wait (EnsureWithin).
func KeepOutboxStreams(ctx context.Context, js jetstream.JetStream, ns string, wait time.Duration, log *zap.Logger) (*Keeper, error) {
	k := NewKeeper(js, log, EventsStreamResource(js, ns), AuditStreamResource(js, ns))
	if err := k.EnsureWithin(ctx, wait); err != nil {
		return nil, err
	}
	return k, nil
}

// Ready reports whether the connection is up and every resource was there at the last
// check, with nothing reported missing since.
func (k *Keeper) Ready() bool { return k.ready.Load() && k.nc.IsConnected() }

// Ensure looks every resource up, in order, and creates each one that is missing. It
// returns the first error; Ready holds afterwards only if there was none.
func (k *Keeper) Ensure(ctx context.Context) error {
	recreated, err := k.round(ctx)
	for _, f := range recreated {
		f()
	}
	return err
}

// retryEvery is the pause between EnsureWithin's attempts.
const retryEvery = 500 * time.Millisecond

// DefaultStreamWait is EnsureWithin's wait when none is given (LATCHKEY_STREAM_WAIT).
const DefaultStreamWait = time.Minute

// EnsureWithin is Ensure, tried again every half second until it succeeds, for at most
// wait (DefaultStreamWait if not positive): what a service does at start, when NATS may still be starting or a cluster still
// forming (no JetStream leader yet, fewer servers than a stream's replicas), which makes
// creating a stream time out or fail for a while. Its error, once wait has passed or ctx
// ended, names the wait and the last failure, and says what to check.
func (k *Keeper) EnsureWithin(ctx context.Context, wait time.Duration) error {
	if wait <= 0 {
		wait = DefaultStreamWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for logged := false; ; {
		cctx, stop := context.WithTimeout(ctx, checkTimeout)
		err := k.Ensure(cctx)
		stop()
		if err == nil {
			if logged {
				k.log.Info("jetstream: resources in place")
			}
			return nil
		}
		if !logged {
			k.log.Warn("jetstream: resources not in place yet; waiting", zap.Duration("up_to", wait), zap.Error(err))
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("jetstream: not in place within %s (LATCHKEY_STREAM_WAIT): is NATS up, its cluster formed, "+
				"with JetStream on at least LATCHKEY_STREAM_REPLICAS servers? last error: %w", wait, err)
		case <-time.After(retryEvery):
		}
	}
}

// round is one pass over the resources; it returns the Recreated hooks to call.
func (k *Keeper) round(ctx context.Context) (recreated []func(), err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer func() { k.ready.Store(err == nil) }()
	for i, r := range k.res {
		created, err := r.Lookup(ctx)
		if Missing(err) {
			k.ready.Store(false)
			k.log.Warn("jetstream: missing; creating it", zap.String("resource", r.Name))
			created, err = k.create(ctx, r)
		}
		if err != nil {
			return recreated, fmt.Errorf("jetstream: %s: %w", r.Name, err)
		}
		if prev := k.created[i]; !prev.IsZero() && !prev.Equal(created) && r.Recreated != nil {
			recreated = append(recreated, r.Recreated)
		}
		k.created[i] = created
	}
	return recreated, nil
}

// create makes r after the settle time, unless it has appeared meanwhile.
func (k *Keeper) create(ctx context.Context, r Resource) (time.Time, error) {
	select {
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-time.After(k.Settle):
	}
	if created, err := r.Lookup(ctx); !Missing(err) {
		return created, err
	}
	return r.Create(ctx)
}

// Notice is for every error from publishing or consuming: if it says a stream or consumer
// is missing, the keeper is not ready until a check (started at once) finds everything.
// It reports whether err was such an error.
func (k *Keeper) Notice(err error) bool {
	if !Missing(err) {
		return false
	}
	k.ready.Store(false)
	k.Kick()
	return true
}

// Kick asks for a check now.
func (k *Keeper) Kick() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// Run checks until ctx ends: every CheckEvery, when kicked, and after each reconnect
// (a restarted nats-server may have lost its JetStream store).
func (k *Keeper) Run(ctx context.Context) error {
	statuses := k.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED)
	defer k.nc.RemoveStatusListener(statuses)
	every := k.CheckEvery
	if every <= 0 {
		every = DefaultCheckEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-statuses:
			if s != nats.CONNECTED {
				k.ready.Store(false) // until a check on the new connection
				continue
			}
		case <-k.kick:
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := k.Ensure(cctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil && !k.failing.Swap(true):
			k.log.Warn("jetstream: resources not in place; retrying", zap.Error(err))
		case err == nil && k.failing.Swap(false):
			k.log.Info("jetstream: resources in place again")
		}
	}
}
