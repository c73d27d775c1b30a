// Package receipts answers "has every live gateway applied this revocation?": gateways
// announce themselves with heartbeats and confirm each event they apply; a revocation
// waits for the confirmations of the gateways that were live when it was made.
package receipts

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
)

// Tracker knows the live gateways.
type Tracker struct {
	nc *nats.Conn
	ns string
	// Window is how recent a heartbeat must be for its gateway to count as live.
	Window time.Duration

	mu      sync.Mutex
	seen    map[string]time.Time
	started time.Time
}

// New returns a tracker; call Start to follow heartbeats.
func New(nc *nats.Conn, ns string) *Tracker {
	return &Tracker{nc: nc, ns: ns, Window: 3 * time.Second, seen: map[string]time.Time{}}
}

// Start follows gateway heartbeats until the subscription is closed. Every (re)connect to
// NATS starts a new warmup (Known): heartbeats sent while the tracker was cut off are lost,
// so the live gateways it remembers may be fewer than there are, and a receipt counted on
// them would be complete too soon (a keys replica whose NATS node died, issue 11).
func (t *Tracker) Start() (*nats.Subscription, error) {
	t.mu.Lock()
	t.started = time.Now()
	t.mu.Unlock()
	statuses := t.nc.StatusChanged(nats.CONNECTED, nats.CLOSED)
	go func() {
		defer t.nc.RemoveStatusListener(statuses)
		for s := range statuses {
			if s == nats.CLOSED {
				return
			}
			t.mu.Lock()
			t.started = time.Now()
			t.mu.Unlock()
		}
	}()
	return t.nc.Subscribe(natsx.GatewayHeartbeatSubject(t.ns), func(m *nats.Msg) {
		var hb eventsv1.GatewayHeartbeat
		if proto.Unmarshal(m.Data, &hb) != nil || hb.GetGatewayId() == "" {
			return
		}
		t.mu.Lock()
		t.seen[hb.GetGatewayId()] = time.Now()
		t.mu.Unlock()
	})
}

// Live returns the gateways heard from within the window, forgetting older ones.
func (t *Tracker) Live() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	live := make(map[string]bool, len(t.seen))
	for id, at := range t.seen {
		if time.Since(at) <= t.Window {
			live[id] = true
		} else {
			delete(t.seen, id)
		}
	}
	return live
}

// Watch collects confirmations of one event. Make it before the event can be published
// (before the commit), so no confirmation is missed.
type Watch struct {
	t       *Tracker
	sub     *nats.Subscription
	applied chan string
}

// errCutOff: with no NATS connection there is nothing to watch.
var errCutOff = errors.New("receipts: not connected to NATS")

// Watch starts collecting confirmations of eventID.
func (t *Tracker) Watch(eventID string) (*Watch, error) {
	if !t.nc.IsConnected() {
		return nil, errCutOff
	}
	w := &Watch{t: t, applied: make(chan string, 64)}
	sub, err := t.nc.Subscribe(natsx.GatewayAppliedSubject(t.ns, eventID), func(m *nats.Msg) {
		var a eventsv1.GatewayApplied
		if proto.Unmarshal(m.Data, &a) == nil && a.GetGatewayId() != "" {
			select {
			case w.applied <- a.GetGatewayId():
			default: // more gateways than buffer: Wait still sees the rest
			}
		}
	})
	if err != nil {
		return nil, err
	}
	w.sub = sub
	// Make sure the server knows of the subscription before the event can go out.
	if err := t.nc.FlushTimeout(2 * time.Second); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return w, nil
}

// Receipt is how far an event has reached.
type Receipt struct {
	Live, Applied int
	Waited        time.Duration
	// Known is false when the tracker cannot tell which gateways are live: it is cut off
	// from NATS, or has not listened for a whole heartbeat window yet.
	Known bool
}

// Complete reports whether every live gateway applied the event. An unknown set of live
// gateways is never complete: silence is not confirmation.
func (r Receipt) Complete() bool { return r.Known && r.Applied >= r.Live }

// Known reports whether the tracker can tell which gateways are live.
func (t *Tracker) Known() bool {
	t.mu.Lock()
	started := t.started
	t.mu.Unlock()
	return t.nc.IsConnected() && !started.IsZero() && time.Since(started) >= warmup
}

// warmup is how long the tracker listens before it trusts its live set: one and a half
// heartbeat intervals, so every live gateway has been heard once.
const warmup = 1500 * time.Millisecond

// Wait blocks until every gateway live now has confirmed or stopped being live, or timeout
// passes, or ctx ends. A gateway that stops being live (no heartbeat for Window) needs no
// confirmation: it heartbeats only while it follows the events stream and trusts its
// cache, and stops both together the moment it cannot confirm it follows the stream (a
// dead NATS node, a lost consumer) or dies; it flushes its cache before it is heard again.
func (w *Watch) Wait(ctx context.Context, timeout time.Duration) Receipt {
	defer w.Close()
	start := time.Now()
	live := w.t.Live()
	// Before the warmup is over the live set is not known: a gateway heard from now on was
	// live when the event was made (it heartbeats about once a second), so it is waited for
	// too. Once known, the set is the one of the event's making: a gateway that starts
	// following the stream later starts with an empty cache and needs no confirmation.
	warming := !w.t.Known()
	got := map[string]bool{}
	count := func() Receipt {
		if warming {
			for id := range w.t.Live() {
				live[id] = true
			}
			warming = !w.t.Known()
		}
		now := w.t.Live()
		n := 0
		for id := range live {
			switch {
			case got[id]:
				n++
			case !now[id] && !warming:
				delete(live, id) // stopped: dead, or distrusting its cache
			}
		}
		return Receipt{Live: len(live), Applied: n, Waited: time.Since(start), Known: w.t.Known()}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	// Re-evaluate now and then too: whether the live set is known changes with time.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for r := count(); !r.Complete(); r = count() {
		select {
		case id := <-w.applied:
			got[id] = true
		case <-tick.C:
		case <-timer.C:
			return r
		case <-ctx.Done():
			return r
		}
	}
	return count()
}

// Close stops collecting.
func (w *Watch) Close() { _ = w.sub.Unsubscribe() }
