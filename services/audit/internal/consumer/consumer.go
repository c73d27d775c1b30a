// Package consumer stores the audit events services hand to JetStream. A durable pull
// consumer delivers them; each batch is stored in one transaction and acknowledged only
// after the commit, so a crash or an outage delays events and loses none, and a
// redelivery is a no-op (events are stored once, by id). A natsx.Keeper keeps the audit
// stream and the durable consumer in existence; consuming starts again on each new one.
package consumer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/record"

	"github.com/latchkey/latchkey/pkg/periodic"
)

// Name is the durable consumer's name; every replica shares it.
const Name = "audit"

// Tuning. A batch is what one fetch brings, up to BatchSize; MaxAckPending lets two batches
// be in flight (one being stored, the next buffered).
const (
	BatchSize     = 500
	MaxAckPending = 2 * BatchSize
	// AckWait is how long a delivered, unacknowledged message waits before redelivery
	// (to this replica or another).
	AckWait = 30 * time.Second
	// storeTimeout bounds one batch's transaction. It is not tied to the worker's context,
	// so a batch in progress at shutdown is finished and acknowledged.
	storeTimeout = 30 * time.Second
	// pendingEvery is how often the pending gauge is refreshed.
	pendingEvery = 5 * time.Second
)

// Appender stores a batch: the audit store's Append.
type Appender func(ctx context.Context, evs []chain.Content) ([]bool, error)

// Consumer moves events from the audit stream into the store.
type Consumer struct {
	append Appender
	log    *zap.Logger
	keeper *natsx.Keeper

	mu   sync.Mutex
	cons jetstream.Consumer
	// renewed says a new durable consumer exists (made by the keeper, or by a replica):
	// consuming starts again on it.
	renewed chan struct{}
}

// config is the durable consumer every replica shares. A new consumer starts at the
// stream's first message, so events handed over before the audit service ever ran are
// stored too.
var config = jetstream.ConsumerConfig{
	Durable:       Name,
	Description:   "the audit service: stores each event once",
	AckPolicy:     jetstream.AckExplicitPolicy,
	AckWait:       AckWait,
	MaxAckPending: MaxAckPending,
	DeliverPolicy: jetstream.DeliverAllPolicy,
	MaxDeliver:    -1,
}

// Ensure makes (or updates) the namespace's audit stream and the durable consumer on it,
// and returns a consumer that keeps both in existence while it runs. It waits for them up
// to wait (natsx.Keeper.EnsureWithin).
func Ensure(ctx context.Context, js jetstream.JetStream, ns string, wait time.Duration, appendFn Appender, log *zap.Logger) (*Consumer, error) {
	c := &Consumer{append: appendFn, log: log, renewed: make(chan struct{}, 1)}
	durable := natsx.ConsumerResource(js, natsx.AuditStream(ns), config, c.use)
	durable.Recreated = c.renew
	c.keeper = natsx.NewKeeper(js, log, natsx.AuditStreamResource(js, ns), durable)
	if err := c.keeper.EnsureWithin(ctx, wait); err != nil {
		return nil, err
	}
	if c.consumer() == nil { // it existed: take a handle on it
		cons, err := js.Consumer(ctx, natsx.AuditStream(ns), Name)
		if err != nil {
			return nil, err
		}
		c.use(cons)
	}
	return c, nil
}

// Ready reports whether the stream and the durable consumer are there (natsx.Keeper.Ready).
func (c *Consumer) Ready() bool { return c.keeper.Ready() }

// use makes cons the consumer to pull from.
func (c *Consumer) use(cons jetstream.Consumer) {
	c.mu.Lock()
	c.cons = cons
	c.mu.Unlock()
	c.renew()
}

func (c *Consumer) renew() {
	select {
	case c.renewed <- struct{}{}:
	default:
	}
}

func (c *Consumer) consumer() jetstream.Consumer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cons
}

// errRenewed ends consuming from a consumer that has been replaced.
var errRenewed = errors.New("audit consumer: a new durable consumer exists")

// Run consumes until ctx ends. Messages fetched but not stored by then are handed back
// (nak) so another replica, or the next start, gets them at once. If consuming stops (the
// consumer or the stream was deleted, JetStream refused), the keeper is told, and
// consuming starts again on the consumer it makes, or after a pause.
func (c *Consumer) Run(ctx context.Context) error {
	go c.watchPending(ctx)
	go func() { _ = c.keeper.Run(ctx) }()
	pause := 250 * time.Millisecond
	for {
		began := time.Now()
		err := c.consume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errRenewed) {
			continue
		}
		if time.Since(began) > time.Minute {
			pause = 250 * time.Millisecond // it had been working: no reason to wait long
		}
		c.keeper.Notice(err)
		c.keeper.Kick()
		c.log.Warn("audit consumer stopped; starting again", zap.Duration("in", pause), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-c.renewed:
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Second)
	}
}

// consume delivers batches to process until ctx ends (nil) or consuming stops (the error).
func (c *Consumer) consume(ctx context.Context) error {
	msgs := make(chan jetstream.Msg, MaxAckPending)
	stopped := make(chan error, 1)
	select { // this is the newest consumer
	case <-c.renewed:
	default:
	}
	cc, err := c.consumer().Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
			_ = m.Nak()
		}
	},
		jetstream.PullMaxMessages(BatchSize),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			switch {
			case natsx.Missing(err):
				select {
				case stopped <- err:
				default:
				}
			case errors.Is(err, jetstream.ErrNoHeartbeat):
				c.keeper.Kick() // silence: is the consumer still there?
			case ctx.Err() != nil:
			default:
				c.log.Warn("audit consumer", zap.Error(err))
			}
		}),
	)
	if err != nil {
		return err
	}
	defer func() {
		cc.Stop()
		for {
			select {
			case m := <-msgs:
				_ = m.Nak()
			default:
				return
			}
		}
	}()

	batch := make([]jetstream.Msg, 0, BatchSize)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-stopped:
			return err
		case <-c.renewed:
			return errRenewed
		case m := <-msgs:
			batch = append(batch[:0], m)
		fill:
			for len(batch) < BatchSize {
				select {
				case m := <-msgs:
					batch = append(batch, m)
				default:
					break fill
				}
			}
			c.process(ctx, batch)
		}
	}
}

// process stores one batch and acknowledges it, or hands it back for redelivery.
func (c *Consumer) process(ctx context.Context, batch []jetstream.Msg) {
	evs := make([]chain.Content, 0, len(batch))
	good := make([]jetstream.Msg, 0, len(batch))
	for _, m := range batch {
		ev, err := decode(m)
		if err != nil {
			rejectedTotal.Inc()
			c.log.Error("audit message rejected: not a storable event", zap.String("subject", m.Subject()),
				zap.String("msg_id", m.Headers().Get(nats.MsgIdHdr)), zap.Error(err))
			_ = m.Term()
			continue
		}
		evs = append(evs, ev)
		good = append(good, m)
	}
	if len(evs) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	start := time.Now()
	stored, err := c.append(sctx, evs)
	if err != nil {
		storeFailures.Inc()
		c.log.Error("audit batch not stored; handing it back", zap.Int("events", len(evs)), zap.Error(err))
		for _, m := range good {
			_ = m.NakWithDelay(backoff(m))
		}
		return
	}
	storeSeconds.Observe(time.Since(start).Seconds())
	n := 0
	for _, s := range stored {
		if s {
			n++
		}
	}
	storedTotal.Add(float64(n))
	for _, m := range good {
		_ = m.Ack()
	}
}

// decode reads one message's event: its id from the event, else from Nats-Msg-Id; its time
// from the event, else when JetStream received it.
func decode(m jetstream.Msg) (chain.Content, error) {
	var ev auditv1.AuditEvent
	if err := proto.Unmarshal(m.Data(), &ev); err != nil {
		return chain.Content{}, err
	}
	received := time.Now()
	if md, err := m.Metadata(); err == nil {
		received = md.Timestamp
	}
	return record.FromProto(&ev, m.Headers().Get(nats.MsgIdHdr), received)
}

// backoff grows with each redelivery of a message that could not be stored: 250ms, 500ms,
// … up to 30s.
func backoff(m jetstream.Msg) time.Duration {
	d := 250 * time.Millisecond
	if md, err := m.Metadata(); err == nil {
		for i := uint64(1); i < md.NumDelivered && d < 30*time.Second; i++ {
			d *= 2
		}
	}
	return min(d, 30*time.Second)
}

// watchPending keeps the pending gauge up to date.
func (c *Consumer) watchPending(ctx context.Context) {
	_ = periodic.Now(ctx, pendingEvery, func(ctx context.Context) {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if info, err := c.consumer().Info(ictx); err == nil {
			pending.Set(float64(info.NumPending) + float64(info.NumAckPending))
		}
	})
}
