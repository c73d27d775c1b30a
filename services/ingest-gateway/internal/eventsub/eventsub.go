// Package eventsub keeps the gateway's cache true to the event stream: it consumes the
// events stream from JetStream, drops entries as key and account events arrive, confirms
// key events for revocation receipts, flushes the cache after a gap, and announces the
// gateway with heartbeats while it is subscribed. Whenever it cannot confirm that it
// follows the stream (a disconnect, a lost consumer, a recreated stream) the cache is
// distrusted at once, and trusted again only after a fresh subscription and a flush.
package eventsub

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
)

// Subscriber follows the events stream for one gateway.
type Subscriber struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	ns        string
	gatewayID string
	cache     *keycache.Cache
	// ensure makes the events stream exist (the gateway's natsx.Keeper.Ensure).
	ensure func(context.Context) error
	log    *zap.Logger

	subscribed atomic.Bool
	// lastSeq is the stream sequence of the last event handled; a jump is a gap.
	lastSeq atomic.Uint64
	// since is when the current consumer was made (unix nanoseconds): events older than it
	// are its replay, whose age is no lag.
	since atomic.Int64
	// floor is the stream's last sequence just before the current consumer was made: the
	// consumer delivers everything after it, so the gateway has seen the stream up to at
	// least max(floor, lastSeq).
	floor atomic.Uint64
	// reset asks Run to start a fresh consumer (after a reconnect or a lost consumer).
	reset chan struct{}
	// OnApplied, if set, is told each key event applied, with when (benchmarks use it).
	OnApplied func(ev *eventsv1.Event, at time.Time)
}

// New returns a subscriber; call Run. The cache is distrusted until Run has subscribed.
// ensure is called before each subscription, to make the events stream if it is missing.
func New(nc *nats.Conn, js jetstream.JetStream, ns, gatewayID string, cache *keycache.Cache, ensure func(context.Context) error, log *zap.Logger) *Subscriber {
	cache.Distrust()
	return &Subscriber{nc: nc, js: js, ns: ns, gatewayID: gatewayID, cache: cache, ensure: ensure, log: log, reset: make(chan struct{}, 1)}
}

// Subscribed reports whether the gateway is following the stream now.
func (s *Subscriber) Subscribed() bool {
	return s.subscribed.Load() && s.cache.Trusted() && s.nc.IsConnected()
}

// Lost says the gateway can no longer confirm it follows the stream (why is a metric
// label): the cache is distrusted from this moment and a fresh consumer is made.
func (s *Subscriber) Lost(why string) {
	s.subscribed.Store(false)
	s.cache.Distrust()
	flushes.WithLabelValues(why).Inc()
	s.log.Info("events: not following the stream; cache distrusted until subscribed again", zap.String("why", why))
	s.requestReset()
}

// Reconnected is for the NATS reconnect handler: whatever happened while disconnected is
// unknown. (The connection's dialer distrusts the cache already, before the new connection
// carries anything: see natsx.OnConnectionLost.)
func (s *Subscriber) Reconnected() { s.Lost("reconnect") }

func (s *Subscriber) requestReset() {
	select {
	case s.reset <- struct{}{}:
	default:
	}
}

// Run follows the stream until ctx ends, making a new consumer whenever the old one is
// lost, and sends heartbeats while subscribed.
func (s *Subscriber) Run(ctx context.Context) error {
	go s.heartbeats(ctx)
	go s.checkCurrent(ctx)
	for ctx.Err() == nil {
		cc, err := s.consume(ctx)
		if err != nil {
			s.log.Warn("events: cannot subscribe; retrying", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-s.reset:
		}
		s.subscribed.Store(false)
		cc.Stop()
	}
	return nil
}

// Replay is how far back a new consumer starts: the events of the last Replay are applied
// (to a cache just flushed, where they drop nothing that matters) and their key events
// confirmed. A revocation whose receipt is being waited for (30 s at most) while this
// gateway was cut off from the stream is thus confirmed when the gateway follows the
// stream again, instead of holding the receipt until its timeout (issue 11: a receipt
// counting 0 of the live gateways after a NATS node died). The confirmation is true: the
// cache was flushed after the event was in the stream, so it holds no answer older than it.
const Replay = time.Minute

// errLostMeanwhile is a subscription made while the stream was lost again.
var errLostMeanwhile = errors.New("events: lost the stream while subscribing")

// consume makes an ephemeral consumer of the events from Replay ago on. Anything before its
// making may have been missed, so once it exists the cache is flushed and trusted again,
// unless the stream was lost meanwhile.
func (s *Subscriber) consume(ctx context.Context) (jetstream.ConsumeContext, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.ensure(cctx); err != nil {
		return nil, err
	}
	token := s.cache.Distrusts()
	stream, err := s.js.Stream(cctx, natsx.EventsStream(s.ns))
	if err != nil {
		return nil, err
	}
	s.floor.Store(stream.CachedInfo().State.LastSeq)
	s.since.Store(time.Now().UnixNano())
	from := time.Now().Add(-Replay)
	cons, err := stream.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{natsx.EventSubject(s.ns, ">")},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &from,
	})
	if err != nil {
		return nil, err
	}
	s.lastSeq.Store(0)
	cc, err := cons.Consume(s.handle,
		jetstream.PullHeartbeat(time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			// Missed heartbeats, a deleted consumer or stream: events may be going by unseen.
			s.log.Warn("events: consumer trouble; resubscribing", zap.Error(err))
			s.Lost("consumer error")
		}),
	)
	if err != nil {
		return nil, err
	}
	if !s.cache.Trust(token) {
		cc.Stop()
		return nil, errLostMeanwhile
	}
	// Heard before it is ready: a revocation's receipt (keys service, package receipts)
	// waits only for the gateways it has heard, and this one may take any request from the
	// moment it is ready, its next heartbeat up to a second away.
	s.announce()
	_ = s.nc.FlushTimeout(time.Second)
	s.subscribed.Store(true)
	s.log.Info("events: subscribed; cache flushed and trusted", zap.String("stream", natsx.EventsStream(s.ns)))
	return cc, nil
}

// CheckEvery is how often a subscribed gateway asks the events stream's leader for the
// stream's last sequence; each answer must have been delivered by its consumer by the
// next check, and an unanswered check counts as falling behind.
const CheckEvery = time.Second

// checkCurrent confirms, every CheckEvery, that the consumer keeps up with the stream, and
// calls Lost when it does not. Consumer heartbeats say the consumer lives, not that it
// delivers: an ordered consumer (one replica, in memory) on a server whose copy of the
// stream lags after a node died heartbeats on while delivering nothing new, and a gateway
// trusting its cache meanwhile accepted keys revoked seconds before, its receipts held
// until their timeout (issue 11, fault a). A stream without a reachable leader cannot be
// confirmed either. So trust lasts only while the leader's last sequence, asked each
// second, is delivered within the next second: a revocation is applied, or the cache
// distrusted, within about two seconds, before this gateway drops out of a receipt's count
// (receipts: three seconds without a heartbeat, which stop at Lost).
func (s *Subscriber) checkCurrent(ctx context.Context) {
	t := time.NewTicker(CheckEvery)
	defer t.Stop()
	var want uint64 // the last sequence the previous check saw: delivered by now?
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.Subscribed() {
			want = 0
			continue
		}
		if seen := max(s.floor.Load(), s.lastSeq.Load()); want > seen {
			s.Lost("behind the stream")
			want = 0
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, CheckEvery)
		stream, err := s.js.Stream(cctx, natsx.EventsStream(s.ns))
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("events: cannot confirm the stream's last event", zap.Error(err))
			s.Lost("stream unconfirmed")
			want = 0
		default:
			want = stream.CachedInfo().State.LastSeq
		}
	}
}

// gap flushes the cache: an event may have been missed.
func (s *Subscriber) gap(why string) {
	n := s.cache.Flush()
	flushes.WithLabelValues(why).Inc()
	s.log.Warn("events: gap; cache flushed", zap.String("why", why), zap.Int("dropped", n))
}

func (s *Subscriber) handle(m jetstream.Msg) {
	// The stream holds events only and the filter takes them all, so stream sequences run
	// without holes; a hole is an event this gateway never saw (e.g. aged out of the stream
	// while the ordered consumer was recovering).
	if md, err := m.Metadata(); err == nil {
		if last := s.lastSeq.Swap(md.Sequence.Stream); last != 0 && md.Sequence.Stream != last+1 {
			s.gap("sequence gap")
		}
	}
	var ev eventsv1.Event
	if err := proto.Unmarshal(m.Data(), &ev); err != nil {
		s.log.Warn("events: undecodable event; flushing to be safe", zap.String("subject", m.Subject()))
		s.gap("bad event")
		return
	}
	s.apply(&ev)
	if t := ev.GetTime(); t != nil && t.AsTime().UnixNano() >= s.since.Load() {
		eventLag.Set(time.Since(t.AsTime()).Seconds())
	}
}

// apply changes the cache for one event and, for key events, confirms it.
func (s *Subscriber) apply(ev *eventsv1.Event) {
	acct := ev.GetAccountId()
	keyEvent := true
	switch p := ev.GetPayload().(type) {
	case *eventsv1.Event_KeyCreated:
		s.cache.DropNegative()
	case *eventsv1.Event_KeyUpdated:
		s.cache.DropKey(p.KeyUpdated.GetKeyId())
	case *eventsv1.Event_KeyRotated:
		s.cache.DropKey(p.KeyRotated.GetKeyId())
		s.cache.DropNegative()
	case *eventsv1.Event_KeyRevoked:
		s.cache.DropKey(p.KeyRevoked.GetKeyId())
	case *eventsv1.Event_KeyClaimed:
		s.cache.DropKey(p.KeyClaimed.GetAnonymousKeyId())
		s.cache.DropNegative()
	case *eventsv1.Event_AccountSuspended, *eventsv1.Event_AccountReinstated, *eventsv1.Event_AccountPlanChanged:
		keyEvent = false
		s.cache.DropAccount(acct)
	case *eventsv1.Event_ProjectUpdated:
		keyEvent = false
		s.cache.DropProject(acct, p.ProjectUpdated.GetProjectId())
	case *eventsv1.Event_ProjectDeleted:
		keyEvent = false
		s.cache.DropProject(acct, p.ProjectDeleted.GetProjectId())
	default:
		keyEvent = false
	}
	eventsApplied.Inc()
	if !keyEvent {
		return
	}
	if s.OnApplied != nil {
		s.OnApplied(ev, time.Now())
	}
	ack, _ := proto.Marshal(&eventsv1.GatewayApplied{GatewayId: s.gatewayID, EventId: ev.GetId()})
	_ = s.nc.Publish(natsx.GatewayAppliedSubject(s.ns, ev.GetId()), ack)
}

// announce sends one heartbeat: the gateway is live and follows the events stream.
func (s *Subscriber) announce() {
	hb, _ := proto.Marshal(&eventsv1.GatewayHeartbeat{
		GatewayId: s.gatewayID, Time: timestamppb.Now(), CacheEntries: int32(min(s.cache.Len(), math.MaxInt32)),
	})
	_ = s.nc.Publish(natsx.GatewayHeartbeatSubject(s.ns), hb)
}

// heartbeats announces the gateway about once a second while it is subscribed, so
// revocation receipts count it.
func (s *Subscriber) heartbeats(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if s.Subscribed() {
			s.announce()
		}
		now := time.Now().UnixNano()
		s.cache.Sweep(now)
		cacheEntries.Set(float64(s.cache.Len()))
		oldestEntry.Set(s.cache.OldestAge(now).Seconds())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
