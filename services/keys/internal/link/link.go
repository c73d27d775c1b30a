// Package link moves a claimed anonymous key's data to its new account (DESIGN "Seed
// schemes", Claim): every message of the key still in the anonymous ingest stream
// (natsx.AnonIngestStream, on natsx.AnonKeySubjects) is republished, payload and headers
// unchanged, to the account's ingest subject (natsx.IngestSubject). The keys service runs it
// before it commits a claim, so a claim that shows its new secret has linked everything
// stored so far, and once more after the gateways have applied the claim (the sweep), for
// what they stored on the anonymous subject meanwhile.
package link

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/latchkey/latchkey/pkg/natsx"
)

// HeaderKeyID is the header the ingest gateway gives every message, one value per ingest
// request the message holds (the gateway merges requests of one subject): the key that
// sent it. Messages are counted in requests by it.
const HeaderKeyID = "Latchkey-Key-Id"

const (
	// DefaultTimeout bounds one Link: reading the key's data and every publish's ack.
	DefaultTimeout = 30 * time.Second
	// batch is how many messages one fetch asks for, and window how many republished
	// messages may await their acks at once.
	batch  = 256
	window = 256
	// fetchWait bounds one fetch of messages that were pending when linking began: it
	// comes back early when they are there, and empty when they expired meanwhile.
	fetchWait = 2 * time.Second
	// consumerIdle is when the server drops the reading consumer of a Link that could not
	// delete it.
	consumerIdle = time.Minute
)

// Target is the account, project and environment linked data goes to.
type Target struct {
	AccountID, ProjectID, Environment string
}

// Result is what one Link did.
type Result struct {
	// Messages is how many messages were republished (JetStream messages, each holding
	// one ingest request or several the gateway merged).
	Messages int64
	// Requests is how many ingest requests they hold: per message the number of
	// Latchkey-Key-Id values, at least 1. It equals the requests the key's sender made
	// whose data was still kept.
	Requests int64
	// Duplicates is how many of the messages the ingest stream already held from an
	// earlier Link of the same key to the same target (within its duplicate window).
	Duplicates int64
	// StoredRequests is how many requests the messages this Link stored hold (Requests
	// less those in Duplicates): what it added to the account. A claim's sweep (the second
	// Link after the commit) stores only the stragglers, and this counts them.
	StoredRequests int64
}

// Linker links anonymous keys' data in one namespace.
type Linker struct {
	js jetstream.JetStream
	ns string
	// Timeout bounds each Link; DefaultTimeout when 0.
	Timeout time.Duration
}

// New returns a Linker for namespace ns, publishing with js.
func New(js jetstream.JetStream, ns string) *Linker {
	return &Linker{js: js, ns: ns}
}

// MsgID is the Nats-Msg-Id of the copy of the message at sequence seq of the anonymous
// stream src published on subject (the target's): "claim-<src>-<seq>-<subject>". The
// ingest stream stores a message once per Nats-Msg-Id within its duplicate window (two
// minutes, the gateway's StreamConfigs), so a claim retried within it links nothing twice.
// The subject is part of it so that a link to one account can never stand in for a link
// to another: if a claim fails after linking and another account then claims the key, the
// second account's copies are stored, not taken for duplicates of the first's.
func MsgID(src string, seq uint64, subject string) string {
	return "claim-" + src + "-" + strconv.FormatUint(seq, 10) + "-" + subject
}

// Link republishes every message of anonymous key keyID still in the anonymous stream to
// to's ingest subject of the same signal, with the original headers (Latchkey-Key-Id,
// Latchkey-Request-Id, Latchkey-Request-Size: one value per request merged into the
// message) and payload, under MsgID, and waits for every ack. It reads with an ephemeral
// consumer on the key's subjects only, and stops at the stream's last message as of its
// start, so a key still sending cannot keep it going; data past the stream's MaxAge (the
// anonymous type's data_ttl) is gone and not counted. Linking the same key to the same
// target again within the ingest stream's duplicate window (two minutes) stores nothing
// twice and answers the same Messages and Requests, with every message a duplicate and
// StoredRequests only for what reached the anonymous stream since (a claim's sweep).
//
// Errors (nothing of Link is undone: a retry completes it): either stream missing, NATS
// unreachable, a publish not acknowledged, or Timeout passing. JetStream's own errors are
// wrapped.
func (l *Linker) Link(ctx context.Context, keyID string, to Target) (Result, error) {
	var res Result
	filter := natsx.AnonKeySubjects(l.ns, keyID)
	if filter == "" {
		return res, fmt.Errorf("link: key id %q or namespace %q is not a subject token", keyID, l.ns)
	}
	if _, err := natsx.IngestSubject(l.ns, to.AccountID, to.ProjectID, to.Environment, "x"); err != nil {
		return res, fmt.Errorf("link: %w", err)
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Disconnected, nats.go would buffer publishes to send them after a reconnect, long
	// after this claim was refused: fail at once instead.
	if nc := l.js.Conn(); nc != nil && !nc.IsConnected() {
		return res, fmt.Errorf("link: %w", nats.ErrConnectionClosed)
	}
	// The ingest stream must be there even when there is nothing to link: the claimed
	// key's data goes there next.
	if _, err := l.js.Stream(ctx, natsx.IngestStream(l.ns)); err != nil {
		return res, fmt.Errorf("link: stream %s: %w", natsx.IngestStream(l.ns), err)
	}
	src := natsx.AnonIngestStream(l.ns)
	stream, err := l.js.Stream(ctx, src)
	if err != nil {
		return res, fmt.Errorf("link: stream %s: %w", src, err)
	}
	last := stream.CachedInfo().State.LastSeq
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       "latchkey claim of " + keyID,
		FilterSubject:     filter, // one subject: nats-server 2.9 has no FilterSubjects
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: consumerIdle,
		MemoryStorage:     true,
	})
	if err != nil {
		return res, fmt.Errorf("link: consumer on %s: %w", src, err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer dcancel()
		_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name) // else idle, then dropped
	}()
	pending := cons.CachedInfo().NumPending
	p := publisher{js: l.js}
	for seen := uint64(0); seen < pending; {
		msgs, err := cons.Fetch(int(min(pending-seen, batch)), jetstream.FetchMaxWait(min(fetchWait, time.Until(deadline(ctx)))))
		if err != nil {
			return res, fmt.Errorf("link: fetch from %s: %w", src, err)
		}
		got, done := 0, false
		for m := range msgs.Messages() {
			got++
			meta, err := m.Metadata()
			if err != nil {
				return res, fmt.Errorf("link: message of %s: %w", src, err)
			}
			if meta.Sequence.Stream > last {
				done = true // sent after linking began
				break
			}
			subject, err := natsx.IngestSubject(l.ns, to.AccountID, to.ProjectID, to.Environment, natsx.SignalOfSubject(m.Subject()))
			if err != nil {
				return res, fmt.Errorf("link: %w", err)
			}
			out := &nats.Msg{Subject: subject, Data: m.Data(), Header: nats.Header{}}
			for k, v := range m.Headers() {
				if !strings.HasPrefix(strings.ToLower(k), "nats-") { // JetStream's own, e.g. the gateway's Nats-Msg-Id
					out.Header[k] = v
				}
			}
			requests := int64(max(1, len(m.Headers().Values(HeaderKeyID))))
			if err := p.publish(ctx, out, MsgID(src, meta.Sequence.Stream, subject), requests, &res); err != nil {
				return res, err
			}
			res.Messages++
			res.Requests += requests
			if meta.NumPending == 0 {
				done = true
			}
		}
		if err := msgs.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return res, fmt.Errorf("link: fetch from %s: %w", src, err)
		}
		if done || got == 0 { // got == 0: the rest expired meanwhile
			break
		}
		seen += uint64(got)
	}
	if err := p.flush(ctx, &res); err != nil {
		return res, err
	}
	return res, nil
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// publisher publishes asynchronously, at most window messages awaiting their acks.
type publisher struct {
	js      jetstream.JetStream
	futures []awaited
}

// awaited is a published message awaiting its ack, and the requests it holds.
type awaited struct {
	f        jetstream.PubAckFuture
	requests int64
}

func (p *publisher) publish(ctx context.Context, m *nats.Msg, msgID string, requests int64, res *Result) error {
	f, err := p.js.PublishMsgAsync(m, jetstream.WithMsgID(msgID))
	if err != nil {
		return fmt.Errorf("link: publish to %s: %w", m.Subject, err)
	}
	p.futures = append(p.futures, awaited{f: f, requests: requests})
	if len(p.futures) >= window {
		return p.flush(ctx, res)
	}
	return nil
}

// flush waits for the ack of every message published since the last flush.
func (p *publisher) flush(ctx context.Context, res *Result) error {
	for _, a := range p.futures {
		select {
		case ack := <-a.f.Ok():
			if ack.Duplicate {
				res.Duplicates++
			} else {
				res.StoredRequests += a.requests
			}
		case err := <-a.f.Err():
			return fmt.Errorf("link: publish to %s: %w", a.f.Msg().Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("link: no ack from JetStream in time: %w", ctx.Err())
		}
	}
	p.futures = p.futures[:0]
	return nil
}
