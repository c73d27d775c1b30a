// Package natsx holds the NATS conventions every service shares: connecting, and the names
// of the events stream and its subjects under a namespace ("latchkey" in production; tests
// use their own so they can run side by side on one server).
package natsx

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/ids"
)

// DefaultNamespace prefixes every subject and stream in production.
const DefaultNamespace = "latchkey"

// Connect connects with endless reconnects, logging each change of state. Options given
// come last, so they may replace these handlers.
func Connect(url, name string, log *zap.Logger, opts ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(c *nats.Conn, err error) {
			if !c.IsClosed() { // closing on shutdown is no news
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", zap.String("url", c.ConnectedUrlRedacted())) }),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("nats: cannot connect to %s: %w", url, err)
	}
	return nc, nil
}

// EventsStream is the JetStream stream holding a namespace's events.
func EventsStream(ns string) string { return strings.ToUpper(ns) + "_EVENTS" }

// EventSubject is the subject of one kind of event, e.g. latchkey.events.key.revoked.
// kind is dot-separated tokens (see ValidToken), or ">" for every kind (a subscription
// filter); any other kind becomes "_", so no string can make a subject NATS refuses.
func EventSubject(ns, kind string) string {
	if kind != ">" && !validTokens(kind) {
		kind = NoToken
	}
	return ns + ".events." + kind
}

// EnsureEventsStream creates or updates the events stream. Its duplicate window is what
// makes a retried publish (same Nats-Msg-Id) land once.
func EnsureEventsStream(ctx context.Context, js jetstream.JetStream, ns string) (jetstream.Stream, error) {
	return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        EventsStream(ns),
		Description: "Latchkey change events (keys, accounts, projects)",
		Subjects:    []string{ns + ".events.>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      7 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute,
	})
}

// GatewayHeartbeatSubject is where live gateways announce themselves.
func GatewayHeartbeatSubject(ns string) string { return ns + ".gateways.heartbeat" }

// GatewayAppliedSubject is where gateways confirm they applied one event; an eventID that
// is not an event id (ids.Event) becomes "_".
func GatewayAppliedSubject(ns, eventID string) string {
	return ns + ".gateways.applied." + idToken(ids.Event, eventID)
}

// AuditStream is the JetStream stream holding a namespace's audit events until the audit
// service has stored them.
func AuditStream(ns string) string { return strings.ToUpper(ns) + "_AUDIT" }

// AuditSubject is where one account's audit events go: "_" for calls with no account, and
// for anything that is not an account id (ids.Account): the account id of an audited call
// may come from an unauthenticated caller, and must neither break the subject (a space, a
// wildcard, 5,000 characters) nor pick another account's subject with a made-up token.
func AuditSubject(ns, accountID string) string {
	return ns + ".audit." + idToken(ids.Account, accountID)
}

// EnsureAuditStream creates or updates the audit stream. It keeps events for 30 days, so
// an audit service outage of up to that long delays events and loses none.
func EnsureAuditStream(ctx context.Context, js jetstream.JetStream, ns string) (jetstream.Stream, error) {
	return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        AuditStream(ns),
		Description: "Latchkey audit events, held until the audit service stores them",
		Subjects:    []string{ns + ".audit.>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      30 * 24 * time.Hour,
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute,
	})
}

// Subject rules. Every subject this package builds is dot-separated tokens of ValidToken,
// so none can carry a wildcard, a space or a control character (which would split the
// protocol line or be refused by nats-server), nor grow past MaxSubjectLen (nats-server
// drops a connection whose control line passes 4 KiB).
const (
	// NoToken stands in a subject for "no id": the account of an unauthenticated call, or
	// an id that is not one.
	NoToken = "_"
	// MaxTokenLen bounds one token, in bytes.
	MaxTokenLen = 64
	// MaxSubjectLen bounds a whole subject, in bytes.
	MaxSubjectLen = 256
)

// ValidToken reports whether s may be one subject token: 1 to MaxTokenLen characters of
// A-Z, a-z, 0-9, '_' and '-'. Ids (pkg/ids), event kinds and namespaces all are.
func ValidToken(s string) bool {
	if s == "" || len(s) > MaxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return false
		}
	}
	return true
}

// ValidSubject reports whether s is a subject one may publish to under these rules:
// dot-separated ValidTokens (so no wildcards), at most MaxSubjectLen bytes. The outbox
// relay checks every row with it before publishing, rows written before these rules too.
func ValidSubject(s string) bool {
	return len(s) <= MaxSubjectLen && validTokens(s)
}

func tokenByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func validTokens(s string) bool {
	for _, tok := range strings.Split(s, ".") {
		if !ValidToken(tok) {
			return false
		}
	}
	return true
}

// idToken is id when it is an id of that prefix, else NoToken.
func idToken(prefix, id string) string {
	if ids.Valid(prefix, id) {
		return id
	}
	return NoToken
}
