// Package receipts answers "has every live gateway applied this revocation?": gateways
// announce themselves with heartbeats and confirm each event they apply; a revocation
// waits for the confirmations of the gateways that were live when it was made.
package receipts

import (
	"context"
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

	mu   sync.Mutex
	seen map[string]time.Time
}

// New returns a tracker; call Start to follow heartbeats.
func New(nc *nats.Conn, ns string) *Tracker {
	return &Tracker{nc: nc, ns: ns, Window: 3 * time.Second, seen: map[string]time.Time{}}
}

// Start follows gateway heartbeats until the subscription is closed.
func (t *Tracker) Start() (*nats.Subscription, error) {
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

// Watch starts collecting confirmations of eventID.
func (t *Tracker) Watch(eventID string) (*Watch, error) {
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
	return w, nil
}

// Receipt is how far an event has reached.
type Receipt struct {
	Live, Applied int
	Waited        time.Duration
}

// Complete reports whether every live gateway applied the event.
func (r Receipt) Complete() bool { return r.Applied >= r.Live }

// Wait blocks until every gateway live now has confirmed, or timeout passes, or ctx ends.
func (w *Watch) Wait(ctx context.Context, timeout time.Duration) Receipt {
	defer w.Close()
	start := time.Now()
	live := w.t.Live()
	got := map[string]bool{}
	count := func() Receipt {
		n := 0
		for id := range got {
			if live[id] {
				n++
			}
		}
		return Receipt{Live: len(live), Applied: n, Waited: time.Since(start)}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for r := count(); !r.Complete(); r = count() {
		select {
		case id := <-w.applied:
			got[id] = true
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
