package ingest

import (
	"context"
	"errors"
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
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// Headers of published messages, each with one value per request the message holds, in
// payload order: the key that sent it, its request id, and its length in bytes, by which
// the payload splits back into the requests. The subject names the account, project,
// environment and signal, and the payload is always OTLP protobuf, so headers carry only
// what the subject cannot: every header is parsed by nats-server and by each consumer.
//
// HeaderServerID is the server of each request's collector key (POST /v1/servers), with
// NoServer for a request whose key belongs to no server, so that its values stay aligned
// with HeaderKeyID's. A message none of whose requests came from a collector key has no
// HeaderServerID at all: most data is not a fleet's, and pays nothing for it.
const (
	HeaderKeyID       = "Latchkey-Key-Id"
	HeaderRequestID   = "Latchkey-Request-Id"
	HeaderRequestSize = "Latchkey-Request-Size"
	HeaderServerID    = "Latchkey-Server-Id"
	// NoServer is HeaderServerID's value for a request of a key bound to no server. A
	// server id is never "-" (srv_ and a ULID), and an empty header value would not
	// survive every NATS client's parsing.
	NoServer = "-"
)

// retryAfter is what a client is told to wait when JetStream cannot take its data.
const retryAfter = time.Second

// Subject is where data of a grant and signal is published: natsx.IngestSubject for a
// grant of an account, or, for an anonymous grant (which has no account, project or
// environment), natsx.AnonSubject, so that one anonymous key's data can be found (to be
// claimed). Each id must be one subject token.
func Subject(ns string, g grant.Grant, sig Signal) (string, error) {
	if g.Anonymous {
		return natsx.AnonSubject(ns, g.KeyID, string(sig))
	}
	return natsx.IngestSubject(ns, g.AccountID, g.ProjectID, g.Environment, string(sig))
}

// Publisher publishes accepted payloads to JetStream and waits for the ack, merging the
// requests of a busy subject into shared messages (merge.go).
type Publisher struct {
	js                    jetstream.JetStream
	ns                    string
	stream, anonStream    string
	maxBytes              int // of a merged message, headers included
	maxRequests           int // in a merged message
	mergeClientRequestIDs bool

	mu    sync.Mutex
	lanes map[string]*lane // by subject

	// StreamLost, if set, is told every error of a publish (the gateway's natsx.Keeper.
	// Notice), so that a deleted stream is made again at once. Set it before serving.
	StreamLost func(error) bool
}

// NewPublisher returns a Publisher on nc. Make the streams first (natsx.IngestStreamConfigs, kept by a
// natsx.Keeper): without them every publish fails (503).
func NewPublisher(nc *nats.Conn, cfg Config) (*Publisher, error) {
	cfg = cfg.withDefaults()
	// The async timeout also drops the pending ack of a message whose ack never comes.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		return nil, err
	}
	return &Publisher{
		js: js, ns: cfg.Namespace, stream: natsx.IngestStream(cfg.Namespace), anonStream: natsx.AnonIngestStream(cfg.Namespace),
		maxBytes: maxMergedBytes, maxRequests: maxMergedRequests, mergeClientRequestIDs: cfg.MergeClientRequestIDs,
		lanes: map[string]*lane{},
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
	if err != nil || g.KeyID == "" || strings.ContainsAny(g.KeyID, "\r\n") || strings.ContainsAny(g.ServerID, "\r\n") {
		log.Error("grant cannot be published", zap.String("key_id", g.KeyID), zap.NamedError("cause", err))
		return apierr.New(apierr.Internal, "internal error")
	}
	stream := p.stream
	if g.Anonymous {
		stream = p.anonStream
	}
	out := outgoing{subject: subject, stream: stream, sig: sig}
	pt := part{keyID: g.KeyID, requestID: requestid.From(ctx), size: len(payload), serverID: g.ServerID}
	if requestid.Supplied(ctx) && !p.mergeClientRequestIDs {
		// Only an id the client chose can come again with its retry: such a request is
		// sent alone, under a Nats-Msg-Id JetStream deduplicates on. An id the gateway
		// made is unique already; JetStream would keep it in its window for nothing.
		out.msgID = MsgID(g.KeyID, sig, pt.requestID, payload)
		err = p.send(ctx, out, []part{pt}, payload)
	} else {
		err = p.merged(ctx, out, pt, payload)
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, nats.ErrMaxPayload) {
		publishFailures.WithLabelValues(string(sig), "max_payload").Inc()
		return apierr.New(apierr.PayloadTooLarge, "the payload (%d bytes) is over the ingest queue's message limit", len(payload))
	}
	if p.StreamLost != nil {
		p.StreamLost(err)
	}
	return p.failed(log, sig, subject, failureReason(err), err)
}

// outgoing is where a message goes, and its Nats-Msg-Id if any.
type outgoing struct {
	subject, stream, msgID string
	sig                    Signal
}

// send publishes one message and waits for its ack.
func (p *Publisher) send(ctx context.Context, out outgoing, ps []part, payload []byte) error {
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
// does not. nats.go keeps the message (and so payload) only to retry it, and retries are
// off: the buffers behind payload go back to their pools once the ack or an error is in.
func (p *Publisher) start(out outgoing, ps []part, payload []byte) (inFlight, error) {
	// Disconnected, nats.go would buffer the message and flush it after a reconnect, long
	// after we told the client 503; refusing at once keeps such late copies rare.
	if nc := p.js.Conn(); nc != nil && !nc.IsConnected() {
		return inFlight{}, nats.ErrConnectionClosed
	}
	publishRequests.Observe(float64(len(ps)))
	keyIDs, requestIDs, sizes := make([]string, len(ps)), make([]string, len(ps)), make([]string, len(ps))
	var serverIDs []string // made at the first request of a server
	for i, pt := range ps {
		keyIDs[i], requestIDs[i], sizes[i] = pt.keyID, pt.requestID, strconv.Itoa(pt.size)
		if pt.serverID != "" && serverIDs == nil {
			serverIDs = make([]string, len(ps))
			for j := range serverIDs {
				serverIDs[j] = NoServer
			}
		}
		if pt.serverID != "" {
			serverIDs[i] = pt.serverID
		}
	}
	msg := &nats.Msg{Subject: out.subject, Data: payload, Header: nats.Header{
		HeaderKeyID:       keyIDs,
		HeaderRequestID:   requestIDs,
		HeaderRequestSize: sizes,
	}}
	if serverIDs != nil {
		msg.Header[HeaderServerID] = serverIDs
	}
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
	level := zap.WarnLevel
	if reason == "canceled" {
		level = zap.DebugLevel // the client went away: nothing for an operator to do
	}
	log.Log(level, "publish failed", zap.String("subject", subject), zap.String("reason", reason), zap.Error(err))
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
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrReconnectBufExceeded):
		return "disconnected"
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return "stalled"
	case errors.Is(err, errMergedTooLarge):
		return "merged_too_large"
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
