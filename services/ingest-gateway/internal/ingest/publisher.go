package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/crc64"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// Headers of every published message.
const (
	HeaderKeyID       = "Latchkey-Key-Id"
	HeaderRequestID   = "Latchkey-Request-Id"
	HeaderAccountID   = "Latchkey-Account-Id"
	HeaderProjectID   = "Latchkey-Project-Id"
	HeaderEnvironment = "Latchkey-Environment"
	HeaderSignal      = "Latchkey-Signal"
	HeaderContentType = "Content-Type"
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

// Publisher publishes accepted payloads to JetStream and waits for the ack.
type Publisher struct {
	js      jetstream.JetStream
	ns      string
	timeout time.Duration
	log     *zap.Logger
}

// NewPublisher returns a Publisher on js. Call EnsureStreams first: without the streams
// every publish fails (503).
func NewPublisher(js jetstream.JetStream, cfg Config) *Publisher {
	cfg = cfg.withDefaults()
	return &Publisher{js: js, ns: cfg.Namespace, timeout: cfg.PublishTimeout, log: cfg.Logger}
}

// Publish stores payload (an OTLP Export*ServiceRequest in protobuf) and returns once
// JetStream has acknowledged it. Its errors are *apierr.Error: unavailable (with
// RetryAfter) for anything JetStream did not take, payload_too_large when the message is
// over the server's max_payload, internal for a grant that cannot name a subject.
func (p *Publisher) Publish(ctx context.Context, g grant.Grant, sig Signal, requestID string, payload []byte) error {
	log := logging.From(ctx)
	subject, err := Subject(p.ns, g, sig)
	if err != nil || g.KeyID == "" || strings.ContainsAny(g.KeyID, "\r\n") {
		log.Error("grant cannot be published", zap.String("key_id", g.KeyID), zap.NamedError("cause", err))
		return apierr.New(apierr.Internal, "internal error")
	}
	stream := Stream(p.ns)
	if g.Anonymous {
		stream = AnonStream(p.ns)
	}
	// Disconnected, nats.go would buffer the request and flush it after a reconnect, long
	// after we told the client 503; refusing at once keeps such late copies rare.
	if nc := p.js.Conn(); nc != nil && !nc.IsConnected() {
		return p.failed(log, sig, subject, "disconnected", nats.ErrConnectionClosed)
	}
	msg := &nats.Msg{Subject: subject, Data: payload, Header: nats.Header{
		HeaderKeyID:           []string{g.KeyID},
		HeaderRequestID:       []string{requestID},
		HeaderAccountID:       []string{g.AccountID},
		HeaderProjectID:       []string{g.ProjectID},
		HeaderEnvironment:     []string{g.Environment},
		HeaderSignal:          []string{string(sig)},
		HeaderContentType:     []string{contentTypeProto},
		jetstream.MsgIDHeader: []string{MsgID(g.KeyID, sig, requestID, payload)},
	}}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	start := time.Now()
	// Expecting the stream makes JetStream refuse rather than misfile data if another
	// stream ever claims the subject.
	ack, err := p.publish(ctx, msg, stream)
	publishSeconds.WithLabelValues(string(sig)).Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			publishFailures.WithLabelValues(string(sig), "max_payload").Inc()
			return apierr.New(apierr.PayloadTooLarge, "the payload (%d bytes) is over the ingest queue's message limit", len(payload))
		}
		return p.failed(log, sig, subject, failureReason(err), err)
	}
	if ack.Duplicate {
		log.Debug("duplicate publish dropped by JetStream", zap.String("subject", subject))
	}
	return nil
}

// publish sends msg and waits for its ack. The async API shares one reply subscription
// across all in-flight publishes, which a request per message (PublishMsg) does not.
func (p *Publisher) publish(ctx context.Context, msg *nats.Msg, stream string) (*jetstream.PubAck, error) {
	f, err := p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(stream))
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
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
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
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
