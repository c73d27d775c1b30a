package ingest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/nats-io/nats.go"
)

// Requests for one subject (account, project, environment and signal) that arrive while
// the subject's previous message awaits its ack are merged into the next message:
// JetStream's cost is mostly per message, so under load a busy subject pays it once per
// batch instead of once per request, and an idle one is published at once, alone. Merging
// is concatenation: an Export*ServiceRequest holds a single repeated field, so
// concatenated requests are themselves one valid request holding all their resources; the
// headers say which bytes came from which key and request.

// maxMergedRequests bounds how many requests one message carries.
const maxMergedRequests = 256

// maxMergedBytes bounds a merged message, headers included, below NATS's max_payload as
// well as this.
const maxMergedBytes = 1 << 20

// headerReserve is room in a message for what is not counted per request: the header
// block's first line and end, and Nats-Expected-Stream.
const headerReserve = 512

// errMergedTooLarge stands for NATS refusing a merged message as over max_payload, which
// the accounting below should prevent: its requests fit alone, so they may retry (503)
// rather than be told they are too large (413).
var errMergedTooLarge = errors.New("ingest: a merged message was over the server's max_payload")

// lane is one subject's merging.
type lane struct {
	busy  bool     // a message of the subject awaits its ack
	queue []*batch // batches waiting for the lane, oldest first; the last one gathers
}

// batch is a merged message in the making. Payloads are copied in, so a request that gives
// up waiting (its client went away) leaves no buffer behind that it might reuse.
type batch struct {
	out     outgoing
	payload *bytes.Buffer
	parts   []part
	bytes   int           // payload and per-request headers, against the message limit
	turn    chan struct{} // closed once the batch is sent: sent and sendErr are set
	sent    inFlight
	sendErr error
	done    chan struct{} // closed once err is set
	err     error
}

// part is one request in a message.
type part struct {
	keyID, requestID string
	// serverID is its collector key's server, "" for none (HeaderServerID).
	serverID string
	size     int  // bytes of payload
	dropped  bool // its client gave up before the batch was sent
}

// headerBytes is what the part adds to the message's headers: a "Name: value\r\n" line
// for each of the three headers, and one of HeaderServerID, counted whether or not the
// message will carry it (a request of no server may share a message with one that has).
func (pt part) headerBytes() int {
	server := max(len(pt.serverID), len(NoServer))
	return len(HeaderKeyID) + len(pt.keyID) + len(HeaderRequestID) + len(pt.requestID) +
		len(HeaderRequestSize) + len(strconv.Itoa(pt.size)) + len(HeaderServerID) + server + 4*len(": \r\n")
}

// limit is the most a merged message may hold, headers included.
func (p *Publisher) limit() int {
	if nc := p.js.Conn(); nc != nil && nc.MaxPayload() > 0 {
		// Read per call: a reconnect may reach a server with another max_payload.
		return min(p.maxBytes, int(nc.MaxPayload())-headerReserve)
	}
	return p.maxBytes
}

// merged sends a request alone if its subject's lane is free, or else adds it to a batch
// waiting for the lane.
func (p *Publisher) merged(ctx context.Context, out outgoing, pt part, payload []byte) error {
	cost, limit := pt.size+pt.headerBytes(), p.limit()
	if cost > limit {
		return p.send(ctx, out, []part{pt}, payload) // too large to share; NATS may refuse it (413)
	}
	p.mu.Lock()
	l := p.lanes[out.subject]
	if l == nil {
		l = &lane{}
		p.lanes[out.subject] = l
	}
	if !l.busy {
		l.busy = true
		p.mu.Unlock()
		defer p.release(out.subject, l)
		return p.send(ctx, out, []part{pt}, payload)
	}
	var b *batch
	if n := len(l.queue); n > 0 {
		if last := l.queue[n-1]; len(last.parts) < p.maxRequests && last.bytes+cost <= limit {
			b = last
		}
	}
	leader := b == nil
	if leader {
		b = &batch{out: out, payload: getBuffer(), turn: make(chan struct{}), done: make(chan struct{})}
		l.queue = append(l.queue, b)
	}
	b.payload.Write(payload)
	b.parts = append(b.parts, pt)
	b.bytes += cost
	i := len(b.parts) - 1
	p.mu.Unlock()

	if !leader {
		select {
		case <-b.done:
			return b.err
		case <-ctx.Done():
			p.drop(l, b, i)
			return ctx.Err()
		}
	}
	// The batch's first request waits for it for all: even if its own client goes away,
	// and under the publish timeout only. Should anything panic on the way, the others
	// are told to retry, and the lane moves on.
	b.err = errors.New("ingest: the batch was not sent")
	defer func() {
		close(b.done)
		p.release(out.subject, l)
		putBuffer(b.payload)
	}()
	<-b.turn
	b.err = b.sendErr
	if b.err == nil {
		b.err = b.sent.wait(context.WithoutCancel(ctx))
	}
	if errors.Is(b.err, nats.ErrMaxPayload) && len(b.parts) > 1 {
		b.err = errMergedTooLarge
	}
	return b.err
}

// drop takes a part whose client gave up out of its batch, if the batch is not sent yet:
// a client that was told its request failed should not find it stored too, and then
// again after its retry.
func (p *Publisher) drop(l *lane, b *batch, i int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Contains(l.queue, b) {
		b.parts[i].dropped = true
	}
}

// release sends the lane's next batch, or frees the lane.
func (p *Publisher) release(subject string, l *lane) {
	p.mu.Lock()
	if len(l.queue) == 0 {
		l.busy = false
		delete(p.lanes, subject)
		p.mu.Unlock()
		return
	}
	b := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:] // b is complete: later requests gather in the next batch
	p.mu.Unlock()
	defer close(b.turn)
	b.seal()
	// Sent here rather than by the batch's leader once it wakes: between an ack and the
	// next message there is then no goroutine to schedule. (A send can wait, up to
	// nats.go's stall limit, when too many acks are pending.)
	b.sent, b.sendErr = p.start(b.out, b.parts, b.payload.Bytes())
}

// seal cuts the dropped parts out of a batch that no one can add to or drop from anymore.
// The leader's part is never dropped, so something is always left.
func (b *batch) seal() {
	if !slices.ContainsFunc(b.parts, func(pt part) bool { return pt.dropped }) {
		return
	}
	kept, data, off := b.parts[:0], b.payload.Bytes(), 0
	compacted := getBuffer()
	for _, pt := range b.parts {
		if !pt.dropped {
			compacted.Write(data[off : off+pt.size])
			kept = append(kept, pt)
		}
		off += pt.size
	}
	putBuffer(b.payload)
	b.payload, b.parts = compacted, kept
}
