// Package outbox is the transactional outbox: a change and its event are written in one
// Postgres transaction, and a relay publishes the event to JetStream right after commit,
// retrying until JetStream acknowledges it. The event id is the Nats-Msg-Id, so a publish
// retried after a lost ack is stored once.
//
// Each service owns an `outbox` table in its schema, made by Migrations.
package outbox

import (
	"context"
	"embed"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/natsx"
)

// Migrations creates the outbox table in a service's schema; pass it to postgres.Migrate
// before the service's own migrations.
//
//go:embed *.sql
var Migrations embed.FS

const (
	insertSQL  = `INSERT INTO outbox (event_id, subject, payload) VALUES ($1, $2, $3)`
	pendingSQL = `SELECT seq, event_id, subject, payload FROM outbox WHERE published_at IS NULL
		ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`
	markSQL  = `UPDATE outbox SET published_at = now() WHERE seq = ANY($1)`
	pruneSQL = `DELETE FROM outbox WHERE published_at < now() - $1::interval`
)

// Add writes ev to the outbox inside tx, on the subject of its kind under namespace ns.
func Add(ctx context.Context, tx pgx.Tx, ns string, ev *eventsv1.Event) error {
	return AddMessage(ctx, tx, ev.GetId(), natsx.EventSubject(ns, events.Kind(ev)), ev)
}

// AddMessage writes any message to the outbox on subject; id becomes its Nats-Msg-Id.
func AddMessage(ctx context.Context, q Execer, id, subject string, m proto.Message) error {
	payload, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, insertSQL, id, subject, payload)
	return err
}

// Execer is a transaction or a pool: an outbox row may be written with a change or alone.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Relay publishes pending outbox rows.
type Relay struct {
	pool *pgxpool.Pool
	js   jetstream.JetStream
	log  *zap.Logger
	wake chan struct{}
	// Poll is the fallback interval: it retries failed publishes and picks up rows another
	// replica wrote and could not publish. The normal path is Notify, right after commit.
	Poll time.Duration
	// Batch is how many events go out before their acks are awaited.
	Batch int
}

// NewRelay returns a relay over the service's pool.
func NewRelay(pool *pgxpool.Pool, js jetstream.JetStream, log *zap.Logger) *Relay {
	return &Relay{pool: pool, js: js, log: log, wake: make(chan struct{}, 1), Poll: time.Second, Batch: 256}
}

// Notify wakes the relay; call it after a transaction that added events commits.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	tick := time.NewTicker(r.Poll)
	defer tick.Stop()
	lastPrune := time.Now()
	for {
		for {
			n, err := r.drain(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.log.Warn("outbox: publish failed; will retry", zap.Error(err))
				break
			}
			if n < r.Batch {
				break
			}
		}
		if time.Since(lastPrune) > time.Hour {
			if _, err := r.pool.Exec(ctx, pruneSQL, "24 hours"); err != nil && ctx.Err() == nil {
				r.log.Warn("outbox: prune failed", zap.Error(err))
			}
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-tick.C:
		}
	}
}

// drain publishes one batch of pending rows and marks those JetStream acknowledged.
func (r *Relay) drain(ctx context.Context) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	rows, err := tx.Query(ctx, pendingSQL, r.Batch)
	if err != nil {
		return 0, err
	}
	type pending struct {
		seq     int64
		future  jetstream.PubAckFuture
		eventID string
	}
	var batch []pending
	for rows.Next() {
		var (
			p       pending
			subject string
			payload []byte
		)
		if err := rows.Scan(&p.seq, &p.eventID, &subject, &payload); err != nil {
			rows.Close()
			return 0, err
		}
		msg := &nats.Msg{Subject: subject, Data: payload, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, p.eventID)
		p.future, err = r.js.PublishMsgAsync(msg)
		if err != nil {
			rows.Close()
			return 0, err
		}
		batch = append(batch, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}
	var acked []int64
	var firstErr error
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for _, p := range batch {
		select {
		case <-p.future.Ok():
			acked = append(acked, p.seq)
		case err := <-p.future.Err():
			if firstErr == nil {
				firstErr = err
			}
		case <-timeout.C:
			if firstErr == nil {
				firstErr = context.DeadlineExceeded
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if firstErr != nil {
			break
		}
	}
	if len(acked) > 0 {
		if _, err := tx.Exec(ctx, markSQL, acked); err != nil {
			return 0, err
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
	}
	return len(acked), firstErr
}
