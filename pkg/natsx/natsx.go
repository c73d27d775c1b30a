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
func EventSubject(ns, kind string) string { return ns + ".events." + kind }

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

// GatewayAppliedSubject is where gateways confirm they applied one event.
func GatewayAppliedSubject(ns, eventID string) string { return ns + ".gateways.applied." + eventID }

// AuditStream is the JetStream stream holding a namespace's audit events until the audit
// service has stored them.
func AuditStream(ns string) string { return strings.ToUpper(ns) + "_AUDIT" }

// AuditSubject is where one account's audit events go; "_" for calls with no account.
func AuditSubject(ns, accountID string) string {
	if accountID == "" {
		accountID = "_"
	}
	return ns + ".audit." + accountID
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
