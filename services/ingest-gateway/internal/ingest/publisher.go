package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// Headers of published messages, each with one value per request the message holds, in
// payload order: the key that sent it, its request id, and its length in bytes, by which
// the payload splits back into the requests. The subject names the account, project,
// environment and signal, and the payload is always OTLP protobuf, so headers carry only
// what the subject cannot: every header is parsed by nats-server and by each consumer.
const (
	HeaderKeyID       = "Latchkey-Key-Id"
	HeaderRequestID   = "Latchkey-Request-Id"
	HeaderRequestSize = "Latchkey-Request-Size"
)

// duplicateWindow is how long JetStream remembers a Nats-Msg-Id: a client's retry of the
// same request (same key, same X-Request-Id) within it is stored once.
const duplicateWindow = 2 * time.Minute

// retryAfter is what a client is told to wait when JetStream cannot take its data.
const retryAfter = time.Second

// Stream is the stream of a namespace's keyed data.
func Stream(ns string) string { return strings.ToUpper(ns) + "_INGEST" }

// AnonStream is the stream of a namespace's anonymous data, kept for the anonymous key
// type's data TTL.
func AnonStream(ns string) string { return strings.ToUpper(ns) + "_INGEST_ANON" }

// EnsureStreams creates or updates the two ingest streams: <NS>_INGEST on <ns>.ingest.>
// kept for retention, and <NS>_INGEST_ANON on <ns>.anon.> kept for anonRetention.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, ns string, retention, anonRetention time.Duration) error {
	if !validToken(ns) {
		return fmt.Errorf("ingest: namespace %q must be one NATS subject token", ns)
	}
	if retention <= 0 || anonRetention <= 0 {
		return fmt.Errorf("ingest: stream retention must be positive (got %s and %s)", retention, anonRetention)
	}
	streams := []jetstream.StreamConfig{
		{
			Name:        Stream(ns),
			Description: "Latchkey accepted telemetry (OTLP protobuf), by account, project, environment and signal",
			Subjects:    []string{ns + ".ingest.>"},
			MaxAge:      retention,
		},
		{
			Name:        AnonStream(ns),
			Description: "Latchkey accepted telemetry from anonymous keys (OTLP protobuf)",
			Subjects:    []string{ns + ".anon.>"},
			MaxAge:      anonRetention,
		},
	}
	for _, sc := range streams {
		sc.Retention = jetstream.LimitsPolicy
		sc.Storage = jetstream.FileStorage
		// JetStream refuses a duplicate window longer than MaxAge.
		sc.Duplicates = min(duplicateWindow, sc.MaxAge)
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ingest: create or update stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// Subject is where data of a grant and signal is published:
// <ns>.ingest.<account>.<project>.<environment>.<signal>, or for anonymous grants
// <ns>.anon.<project>.<environment>.<signal>; "_" stands for an empty project or
// environment.
func Subject(ns string, g grant.Grant, sig Signal) (string, error) {
	project, env := orUnderscore(g.ProjectID), orUnderscore(g.Environment)
	if !validToken(project) || !validToken(env) {
		return "", fmt.Errorf("ingest: project %q or environment %q is not a subject token", g.ProjectID, g.Environment)
	}
	if g.Anonymous {
		return ns + ".anon." + project + "." + env + "." + string(sig), nil
	}
	if !validToken(g.AccountID) {
		return "", fmt.Errorf("ingest: account id %q is not a subject token", g.AccountID)
	}
	return ns + ".ingest." + g.AccountID + "." + project + "." + env + "." + string(sig), nil
}

func orUnderscore(s string) string {
	if s == "" {
		return "_"
	}
	return s
}

// maxMergedRequests bounds how many requests one message carries, which keeps its headers
// small.
const maxMergedRequests = 256

// maxMergedBytes bounds a merged message below NATS's max_payload as well as this.
const maxMergedBytes = 1 << 20

// Publisher publishes accepted payloads to JetStream and waits for the ack.
//
// Requests for one subject (account, project, environment and signal) that arrive while
// the subject's previous message is still waiting for its ack are merged into the next
// message: JetStream's cost is mostly per message, so under load a busy subject pays it
// once per batch instead of once per request, and an idle one is published at once,
// alone. Merging is concatenation: an Export*ServiceRequest holds a single repeated
// field, so concatenated requests are themselves one valid request holding all their
// resources; the headers say which bytes came from which key and request.
type Publisher struct {
	js                 jetstream.JetStream
	ns                 string
	stream, anonStream string
	maxBytes           int // of a merged message's payload
	maxRequests        int // in a merged message

	mu    sync.Mutex
	lanes map[string]*lane // by subject
}

// lane is one subject's merging.
type lane struct {
	busy bool   // a message of the subject is waiting for its ack
	next *batch // requests gathered meanwhile, sent when it is acked
}

// batch is a merged message in the making. Its payloads are copied in, so a request that
// gives up waiting (its client went away) leaves no buffer behind that it might reuse.
type batch struct {
	out     outgoing
	payload *bytes.Buffer
	parts   parts
	turn    chan struct{} // closed once the batch is sent: sent and sendErr are set
	sent    inFlight
	sendErr error
	done    chan struct{} // closed once err is set
	err     error
}

// parts are the header values of a message: per request, in payload order.
type parts struct{ keyIDs, requestIDs, sizes []string }

func (ps *parts) add(keyID, requestID string, size int) {
	ps.keyIDs = append(ps.keyIDs, keyID)
	ps.requestIDs = append(ps.requestIDs, requestID)
	ps.sizes = append(ps.sizes, strconv.Itoa(size))
}

func onePart(keyID, requestID string, size int) parts {
	return parts{keyIDs: []string{keyID}, requestIDs: []string{requestID}, sizes: []string{strconv.Itoa(size)}}
}

// NewPublisher returns a Publisher on nc. Call EnsureStreams first: without the streams
// every publish fails (503).
func NewPublisher(nc *nats.Conn, cfg Config) (*Publisher, error) {
	cfg = cfg.withDefaults()
	// The async timeout also drops the pending ack of a message whose ack never comes.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		return nil, err
	}
	maxBytes := maxMergedBytes
	if mp := int(nc.MaxPayload()); mp > 0 {
		maxBytes = min(maxBytes, mp/2) // room for headers, which grow with the batch
	}
	return &Publisher{
		js: js, ns: cfg.Namespace, stream: Stream(cfg.Namespace), anonStream: AnonStream(cfg.Namespace),
		maxBytes: maxBytes, maxRequests: maxMergedRequests, lanes: map[string]*lane{},
	}, nil
}

// Publish stores payload (an OTLP Export*ServiceRequest in protobuf) and returns once
// JetStream has acknowledged the message holding it. The request id comes from ctx (pkg/
// requestid). Its errors are *apierr.Error: unavailable (with RetryAfter) for anything
// JetStream did not take, payload_too_large when the message is over the server's
// max_payload, internal for a grant that cannot name a subject.
func (p *Publisher) Publish(ctx context.Context, g grant.Grant, sig Signal, payload []byte) error {
	log := logging.From(ctx)
	subject, err := Subject(p.ns, g, sig)
	if err != nil || g.KeyID == "" || strings.ContainsAny(g.KeyID, "\r\n") {
		log.Error("grant cannot be published", zap.String("key_id", g.KeyID), zap.NamedError("cause", err))
		return apierr.New(apierr.Internal, "internal error")
	}
	stream := p.stream
	if g.Anonymous {
		stream = p.anonStream
	}
	out := outgoing{subject: subject, stream: stream, sig: sig}
	requestID := requestid.From(ctx)
	switch {
	case requestid.Supplied(ctx):
		// Only an id the client chose can come again with its retry: such a request is
		// sent alone, under a Nats-Msg-Id JetStream deduplicates on. An id the gateway
		// made is unique already; JetStream would keep it in its window for nothing.
		out.msgID = MsgID(g.KeyID, sig, requestID, payload)
		err = p.send(ctx, out, onePart(g.KeyID, requestID, len(payload)), payload)
	case len(payload) > p.maxBytes:
		err = p.send(ctx, out, onePart(g.KeyID, requestID, len(payload)), payload)
	default:
		err = p.merged(ctx, out, g.KeyID, requestID, payload)
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		publishFailures.WithLabelValues(string(sig), "max_payload").Inc()
		return apierr.New(apierr.PayloadTooLarge, "the payload (%d bytes) is over the ingest queue's message limit", len(payload))
	}
	return p.failed(log, sig, subject, failureReason(err), err)
}

// outgoing is where a message goes, and its Nats-Msg-Id if any.
type outgoing struct {
	subject, stream, msgID string
	sig                    Signal
}

// merged sends a request alone if its subject's lane is free, or else adds it to the
// lane's next batch.
func (p *Publisher) merged(ctx context.Context, out outgoing, keyID, requestID string, payload []byte) error {
	p.mu.Lock()
	l := p.lanes[out.subject]
	if l == nil {
		l = &lane{}
		p.lanes[out.subject] = l
	}
	if !l.busy {
		l.busy = true
		p.mu.Unlock()
		err := p.send(ctx, out, onePart(keyID, requestID, len(payload)), payload)
		p.release(out.subject, l)
		return err
	}
	b := l.next
	if b != nil && (len(b.parts.requestIDs) >= p.maxRequests || b.payload.Len()+len(payload) > p.maxBytes) {
		p.mu.Unlock()
		// The batch is full: this one goes alone.
		return p.send(ctx, out, onePart(keyID, requestID, len(payload)), payload)
	}
	leader := b == nil
	if leader {
		b = &batch{out: out, payload: getBuffer(), turn: make(chan struct{}), done: make(chan struct{})}
		l.next = b
	}
	b.payload.Write(payload)
	b.parts.add(keyID, requestID, len(payload))
	p.mu.Unlock()

	if !leader {
		select {
		case <-b.done:
			return b.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The batch's first request waits for it for all: even if its own client goes away,
	// and under the publish timeout only.
	<-b.turn
	b.err = b.sendErr
	if b.err == nil {
		b.err = b.sent.wait(context.WithoutCancel(ctx))
	}
	close(b.done)
	p.release(out.subject, l)
	putBuffer(b.payload)
	return b.err
}

// release sends the lane's next batch, or frees the lane.
func (p *Publisher) release(subject string, l *lane) {
	p.mu.Lock()
	b := l.next
	if b == nil {
		l.busy = false
		delete(p.lanes, subject)
		p.mu.Unlock()
		return
	}
	l.next = nil // b is complete: later requests gather in a new batch
	p.mu.Unlock()
	// Sent here rather than by the batch's leader once it wakes: between an ack and the
	// next message there is then no goroutine to schedule.
	b.sent, b.sendErr = p.start(b.out, b.parts, b.payload.Bytes())
	close(b.turn)
}

// send publishes one message and waits for its ack.
func (p *Publisher) send(ctx context.Context, out outgoing, ps parts, payload []byte) error {
	m, err := p.start(out, ps, payload)
	if err != nil {
		return err
	}
	return m.wait(ctx)
}

// inFlight is a published message awaiting its ack.
type inFlight struct {
	future  jetstream.PubAckFuture
	subject string
	sig     Signal
	start   time.Time
}

// start publishes one message without waiting for its ack. The async API shares one reply
// subscription across all in-flight publishes, which a request per message (PublishMsg)
// does not. Retries are off: a retry would resend the payload after Publish returned and
// its buffer went back to the pool.
func (p *Publisher) start(out outgoing, ps parts, payload []byte) (inFlight, error) {
	// Disconnected, nats.go would buffer the message and flush it after a reconnect, long
	// after we told the client 503; refusing at once keeps such late copies rare.
	if nc := p.js.Conn(); nc != nil && !nc.IsConnected() {
		return inFlight{}, nats.ErrConnectionClosed
	}
	publishRequests.Observe(float64(len(ps.requestIDs)))
	msg := &nats.Msg{Subject: out.subject, Data: payload, Header: nats.Header{
		HeaderKeyID:       ps.keyIDs,
		HeaderRequestID:   ps.requestIDs,
		HeaderRequestSize: ps.sizes,
	}}
	if out.msgID != "" {
		msg.Header[jetstream.MsgIDHeader] = []string{out.msgID}
	}
	m := inFlight{subject: out.subject, sig: out.sig, start: time.Now()}
	// Expecting the stream makes JetStream refuse rather than misfile data if another
	// stream ever claims the subject.
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(out.stream), jetstream.WithRetryAttempts(0))
	if err != nil {
		return inFlight{}, err
	}
	m.future = f
	return m, nil
}

// wait waits for the ack, at most the publish timeout (nats.go's async timeout).
func (m inFlight) wait(ctx context.Context) error {
	defer func() { publishSeconds.WithLabelValues(string(m.sig)).Observe(time.Since(m.start).Seconds()) }()
	select {
	case ack := <-m.future.Ok():
		if ack.Duplicate {
			logging.From(ctx).Debug("duplicate publish dropped by JetStream", zap.String("subject", m.subject))
		}
		return nil
	case err := <-m.future.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Publisher) failed(log *zap.Logger, sig Signal, subject, reason string, err error) error {
	publishFailures.WithLabelValues(string(sig), reason).Inc()
	log.Warn("publish failed", zap.String("subject", subject), zap.String("reason", reason), zap.Error(err))
	return &apierr.Error{Code: apierr.Unavailable, Message: "the ingest queue is unavailable; retry later", RetryAfter: retryAfter}
}

// failureReason is a small fixed set of labels for the failures counter.
func failureReason(err error) string {
	switch {
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return "no_stream"
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, nats.ErrConnectionReconnecting):
		return "disconnected"
	default:
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			return "rejected"
		}
		return "other"
	}
}

var crcTable = crc64.MakeTable(crc64.ECMA)

// MsgID is the Nats-Msg-Id of a publish: key, signal, request id and a digest of the
// payload. A client's retry of the same payload under the same X-Request-Id is stored once;
// a different payload that reuses a request id (a proxy setting a constant one) is stored
// too, never dropped as a duplicate.
func MsgID(keyID string, sig Signal, requestID string, payload []byte) string {
	return keyID + ":" + string(sig) + ":" + requestID + ":" + strconv.FormatUint(crc64.Checksum(payload, crcTable), 36)
}
