// Package link moves a claimed anonymous key's data to its new account (DESIGN "Seed
// schemes", Claim): every message of the key still in the anonymous ingest stream
// (natsx.AnonIngestStream, on natsx.AnonKeySubjects) is republished, payload and headers
// unchanged, to the account's ingest subject (natsx.IngestSubject). The keys service runs it
// before it commits a claim, so a claim that shows its new secret has linked everything
// stored so far, and once more after the gateways have applied the claim (the sweep), for
// what they stored on the anonymous subject after the first link began.
//
// A link is all or nothing: a Link that fails deletes the copies it stored before it
// returns, and a claim that fails after linking deletes them with Unlink, so a failed or
// cancelled claim leaves no data on any account's subject and a retry, to the same target
// or another, at any time, links every message exactly once. Only when a deletion itself
// fails can copies remain; the error then wraps ErrCopiesRemain and says how many.
package link

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/latchkey/latchkey/pkg/natsx"
)

// HeaderKeyID is the header the ingest gateway gives every message, one value per ingest
// request the message holds (the gateway merges requests of one subject): the key that
// sent it. Messages are counted in requests by it.
const HeaderKeyID = "Latchkey-Key-Id"

const (
	// DefaultTimeout bounds one Link: reading the key's data and every publish's ack. The
	// deletion of a failed Link's copies has UndoTimeout more.
	DefaultTimeout = 30 * time.Second
	// UndoTimeout bounds deleting the copies of a failed link (Link's own clean-up, and
	// Unlink): detached from the caller's cancellation, so that a claim whose client went
	// away still cleans up, but bounded.
	UndoTimeout = 5 * time.Second
	// batch is how many messages one fetch asks for, and window how many republished
	// messages may await their acks at once.
	batch  = 256
	window = 256
	// deleters is how many deletions run at once when a link is undone.
	deleters = 32
	// fetchWait bounds one fetch of messages that were pending when linking began: it
	// comes back early when they are there, and empty when they expired meanwhile.
	fetchWait = 2 * time.Second
	// consumerIdle is when the server drops the reading consumer of a Link that could not
	// delete it.
	consumerIdle = time.Minute
)

// ErrCopiesRemain is wrapped by the error of a failed Link or of Unlink when some copies
// could not be deleted (NATS unreachable, the stream refusing, UndoTimeout passing) or a
// publish was never confirmed either way: data of the key may then be on the target's
// subject although the claim did not commit. The error says how many. A claim logs it at
// error level with the key id.
var ErrCopiesRemain = errors.New("copies of the anonymous key's data remain on the target subject")

// Target is the account, project and environment linked data goes to.
type Target struct {
	AccountID, ProjectID, Environment string
}

// Attempt names one link and where it starts.
type Attempt struct {
	// ID is in the Nats-Msg-Id of every copy the link stores (MsgID): one per claim
	// attempt (a claim uses its key.claimed event's id), never reused by a link to
	// another target nor after a failed link. JetStream's duplicate window then drops only
	// what nats re-sends within one attempt, and a retried claim, a new attempt, stores
	// again what a failed one stored and deleted (deleted ids stay in the window).
	// Required; no white space or control characters.
	ID string
	// After is where the link starts: only messages at anonymous-stream sequences above it
	// are linked. 0 links everything kept; a claim's sweep passes the claim's
	// Result.Through, so it links only what reached the stream after the claim's link
	// began and nothing twice.
	After uint64
}

// Result is what one Link did: what it stored, counted when JetStream acknowledged it.
type Result struct {
	// Messages is how many messages were stored on the target's subjects (JetStream
	// messages, each holding one ingest request or several the gateway merged).
	Messages int64
	// Requests is how many ingest requests they hold: per message the number of
	// Latchkey-Key-Id values, at least 1. For a link from 0 it equals the requests the
	// key's sender made whose data was still kept; for a sweep, the stragglers.
	Requests int64
	// Duplicates is how many messages JetStream had already stored under the same
	// Nats-Msg-Id and so did not store again: only when an Attempt.ID is reused over an
	// overlapping range, which a claim never does. They are not in Messages, Requests or
	// Sequences.
	Duplicates int64
	// Through is the anonymous stream's last sequence when the link began (at least
	// Attempt.After): it linked the key's messages in (After, Through]; what arrives later
	// is left for a link with After = Through.
	Through uint64
	// Sequences are the ingest stream's sequences of the copies stored, in the order they
	// were acknowledged: what Unlink deletes.
	Sequences []uint64
}

// Linker links anonymous keys' data in one namespace.
type Linker struct {
	js jetstream.JetStream
	ns string
	// Timeout bounds each Link; DefaultTimeout when 0.
	Timeout time.Duration
	// onStored, when set (tests), is called after each copy JetStream stored, with how
	// many the Link has stored so far.
	onStored func(n int64)
}

// New returns a Linker for namespace ns, publishing with js.
func New(js jetstream.JetStream, ns string) *Linker {
	return &Linker{js: js, ns: ns}
}

// MsgID is the Nats-Msg-Id of the copy, made by attempt (Attempt.ID), of the message at
// sequence seq of the anonymous stream: "claim-<attempt>-<seq>". Within the ingest
// stream's duplicate window (natsx.IngestDuplicateWindow, two minutes) JetStream stores a
// message once per id, so a publish nats re-sends within one attempt is stored once; it
// is no guard across attempts (each has its own id) and needs none: a failed attempt
// deletes its copies, and a claim's sweep starts after its link (Attempt.After).
func MsgID(attempt string, seq uint64) string {
	return "claim-" + attempt + "-" + strconv.FormatUint(seq, 10)
}

// Link republishes every message of anonymous key keyID in the anonymous stream after
// at.After to `to`'s ingest subject of the same signal, with the original headers
// (Latchkey-Key-Id, Latchkey-Request-Id, Latchkey-Request-Size: one value per request
// merged into the message) and payload, under MsgID(at.ID, sequence), and waits for every
// ack. It reads with an ephemeral consumer on the key's subjects only, and stops at the
// stream's last message as of its start (Result.Through), so a key still sending cannot
// keep it going; data past the stream's MaxAge (the anonymous type's data_ttl) is gone and
// not counted.
//
// Errors: at.ID empty or not a header value, a key id or target that is not a subject
// token, either stream missing, NATS unreachable, a publish refused or not acknowledged,
// ctx ending or Timeout passing. JetStream's own errors are wrapped. A Link that fails
// undoes itself before it returns: it waits (within UndoTimeout, detached from ctx) for
// the acks still awaited and deletes every copy it stored from the ingest stream, so it
// leaves nothing on the target and returns a zero Result. If that deletion fails, the
// error wraps ErrCopiesRemain as well as the cause, and says how many copies remain.
func (l *Linker) Link(ctx context.Context, keyID string, to Target, at Attempt) (Result, error) {
	filter := natsx.AnonKeySubjects(l.ns, keyID)
	if filter == "" {
		return Result{}, fmt.Errorf("link: key id %q or namespace %q is not a subject token", keyID, l.ns)
	}
	if _, err := natsx.IngestSubject(l.ns, to.AccountID, to.ProjectID, to.Environment, "x"); err != nil {
		return Result{}, fmt.Errorf("link: %w", err)
	}
	if at.ID == "" || strings.IndexFunc(at.ID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return Result{}, fmt.Errorf("link: attempt id %q is empty or has white space or control characters", at.ID)
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Disconnected, nats.go would buffer publishes to send them after a reconnect, long
	// after this claim was refused: fail at once instead.
	if nc := l.js.Conn(); nc != nil && !nc.IsConnected() {
		return Result{}, fmt.Errorf("link: %w", nats.ErrConnectionClosed)
	}
	// The ingest stream must be there even when there is nothing to link: the claimed
	// key's data goes there next.
	ingest, err := l.js.Stream(lctx, natsx.IngestStream(l.ns))
	if err != nil {
		return Result{}, fmt.Errorf("link: stream %s: %w", natsx.IngestStream(l.ns), err)
	}
	p := &publisher{js: l.js, onStored: l.onStored}
	res, err := l.link(lctx, keyID, to, at, filter, p)
	if err == nil {
		return res, nil
	}
	return Result{}, undoFailed(ctx, ingest, p, err)
}

// link is Link's work once the names are checked and the ingest stream found: what it
// stored is in p as well as in the Result, for the undo of a failure.
func (l *Linker) link(ctx context.Context, keyID string, to Target, at Attempt, filter string, p *publisher) (Result, error) {
	res := Result{Through: at.After}
	src := natsx.AnonIngestStream(l.ns)
	stream, err := l.js.Stream(ctx, src)
	if err != nil {
		return res, fmt.Errorf("link: stream %s: %w", src, err)
	}
	last := stream.CachedInfo().State.LastSeq
	if last <= at.After {
		return res, nil // nothing arrived since
	}
	res.Through = last
	cfg := jetstream.ConsumerConfig{
		Description:       "latchkey claim of " + keyID,
		FilterSubject:     filter, // one subject: nats-server 2.9 has no FilterSubjects
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: consumerIdle,
		MemoryStorage:     true,
	}
	if at.After > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, at.After+1
	}
	cons, err := stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return res, fmt.Errorf("link: consumer on %s: %w", src, err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer dcancel()
		_ = stream.DeleteConsumer(dctx, cons.CachedInfo().Name) // else idle, then dropped
	}()
	pending := cons.CachedInfo().NumPending
	for seen := uint64(0); seen < pending; {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("link: %w", err)
		}
		msgs, err := cons.Fetch(int(min(pending-seen, batch)), jetstream.FetchMaxWait(min(fetchWait, time.Until(deadline(ctx)))))
		if err != nil {
			return res, fmt.Errorf("link: fetch from %s: %w", src, err)
		}
		got, done := 0, false
		for m := range msgs.Messages() {
			got++
			// A cancelled claim stops here, not after publishing what was fetched.
			if err := ctx.Err(); err != nil {
				return res, fmt.Errorf("link: %w", err)
			}
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
			if err := p.publish(ctx, out, MsgID(at.ID, meta.Sequence.Stream), requests, &res); err != nil {
				return res, err
			}
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

// Unlink deletes from the ingest stream the copies res's Link stored (res.Sequences): a
// claim that linked and then could not commit calls it, so that the failed claim leaves
// nothing on the account's subject. It runs detached from ctx's cancellation, within
// UndoTimeout. A copy already gone (the ingest stream's MaxAge) counts as deleted. Errors
// wrap ErrCopiesRemain and say how many of the copies could not be deleted.
func (l *Linker) Unlink(ctx context.Context, res Result) error {
	if len(res.Sequences) == 0 {
		return nil
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), UndoTimeout)
	defer cancel()
	name := natsx.IngestStream(l.ns)
	ingest, err := l.js.Stream(uctx, name)
	if err != nil {
		return fmt.Errorf("link: %w: all %d copies, stream %s: %w", ErrCopiesRemain, len(res.Sequences), name, err)
	}
	if left, err := deleteAll(uctx, ingest, res.Sequences); left > 0 {
		return fmt.Errorf("link: %w: %d of %d copies could not be deleted from %s: %w", ErrCopiesRemain, left, len(res.Sequences), name, err)
	}
	return nil
}

// undoFailed undoes a Link that failed with cause: it waits for the acks p still awaits
// and deletes every copy p stored from ingest, detached from ctx and within UndoTimeout,
// and returns cause, saying what became of the copies.
func undoFailed(ctx context.Context, ingest jetstream.Stream, p *publisher, cause error) error {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), UndoTimeout)
	defer cancel()
	// Half the time for the acks, so that a silent JetStream leaves time for deleting.
	sctx, scancel := context.WithTimeout(uctx, UndoTimeout/2)
	unknown := p.settle(sctx)
	scancel()
	stored := p.sequences
	left, err := deleteAll(uctx, ingest, stored)
	name := ingest.CachedInfo().Config.Name
	switch {
	case left > 0 && unknown > 0:
		return fmt.Errorf("%w; %w: %d of its %d copies could not be deleted from %s (%w), and %d more publishes were never confirmed",
			cause, ErrCopiesRemain, left, len(stored), name, err, unknown)
	case left > 0:
		return fmt.Errorf("%w; %w: %d of its %d copies could not be deleted from %s: %w", cause, ErrCopiesRemain, left, len(stored), name, err)
	case unknown > 0:
		return fmt.Errorf("%w; %w: %d publishes to %s were never confirmed, so their copies may be stored (the %d confirmed were deleted)",
			cause, ErrCopiesRemain, unknown, name, len(stored))
	case len(stored) > 0:
		return fmt.Errorf("%w (the %d copies stored were deleted again)", cause, len(stored))
	}
	return cause
}

// deleteAll deletes the messages at seqs from stream, several at once, and returns how
// many it could not delete and the first error. A message already gone counts as deleted.
func deleteAll(ctx context.Context, stream jetstream.Stream, seqs []uint64) (int, error) {
	var (
		next, left atomic.Int64
		wg         sync.WaitGroup
		once       sync.Once
		first      error
	)
	for range min(deleters, len(seqs)) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(seqs)); i = next.Add(1) - 1 {
				if err := deleteOne(ctx, stream, seqs[i]); err != nil {
					left.Add(1)
					once.Do(func() { first = err })
				}
			}
		})
	}
	wg.Wait()
	return int(left.Load()), first
}

// deleteOne deletes the message at seq from stream. JetStream's answer for a message that
// is not there is no typed error, so a failed deletion is checked with a read.
func deleteOne(ctx context.Context, stream jetstream.Stream, seq uint64) error {
	err := stream.DeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	if _, gerr := stream.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return fmt.Errorf("delete message %d: %w", seq, err)
}

// publisher publishes asynchronously, at most window messages awaiting their acks, and
// records what JetStream stored.
type publisher struct {
	js jetstream.JetStream
	// futures are the publishes whose acks have not been seen yet.
	futures []awaited
	// sequences are the ingest stream's sequences of the copies stored.
	sequences []uint64
	// unknown counts the publishes that failed without saying whether JetStream stored them.
	unknown  int
	onStored func(n int64)
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

// flush waits for the ack of every message published since the last flush, in order, and
// counts what was stored in res. It stops at the first publish refused and when ctx ends;
// the acks not seen then stay in p.futures (settle).
func (p *publisher) flush(ctx context.Context, res *Result) error {
	for len(p.futures) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("link: no ack from JetStream in time: %w", err)
		}
		a := p.futures[0]
		select {
		case ack := <-a.f.Ok():
			p.futures = p.futures[1:]
			if p.acked(ack, a.requests, res) && p.onStored != nil {
				p.onStored(res.Messages)
			}
		case err := <-a.f.Err():
			p.futures = p.futures[1:]
			if !refused(err) {
				p.unknown++
			}
			return fmt.Errorf("link: publish to %s: %w", a.f.Msg().Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("link: no ack from JetStream in time: %w", ctx.Err())
		}
	}
	p.futures = nil
	return nil
}

// acked records a publish JetStream acknowledged, and reports whether it stored a copy.
func (p *publisher) acked(ack *jetstream.PubAck, requests int64, res *Result) bool {
	if ack.Duplicate {
		res.Duplicates++ // stored by an earlier link of the same attempt id: not this one's
		return false
	}
	p.sequences = append(p.sequences, ack.Sequence)
	res.Sequences = append(res.Sequences, ack.Sequence)
	res.Messages++
	res.Requests += requests
	return true
}

// settle waits, until ctx ends, for the acks of the publishes still awaited when a Link
// failed, recording the copies they stored, and returns how many publishes remain whose
// fate is unknown (no answer, or an error that does not say the message was refused).
func (p *publisher) settle(ctx context.Context) int {
	unknown := p.unknown
	var scratch Result
	for _, a := range p.futures {
		select {
		case ack := <-a.f.Ok():
			p.acked(ack, a.requests, &scratch)
		case err := <-a.f.Err():
			if !refused(err) {
				unknown++
			}
		case <-ctx.Done():
			unknown++
		}
	}
	p.futures, p.unknown = nil, 0
	return unknown
}

// refused reports whether a publish's error says JetStream did not store the message: an
// error answer of the stream (a limit, say) or no stream at all. A timeout or a lost
// connection says nothing either way.
func refused(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}
