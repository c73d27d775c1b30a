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
	"errors"
	"sync/atomic"
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
	insertSQL = `INSERT INTO outbox (event_id, subject, payload) VALUES ($1, $2, $3)`
	// pendingSQL skips rows another replica is publishing and rows set aside.
	pendingSQL = `SELECT seq, event_id, subject, payload, attempts FROM outbox
		WHERE published_at IS NULL AND dead_at IS NULL
		ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`
	markSQL = `UPDATE outbox SET published_at = now() WHERE seq = ANY($1)`
	// failSQL records a failed publish; $2 is 1 when it counts against the row (see drain).
	failSQL     = `UPDATE outbox SET attempts = attempts + $2, last_error = $3 WHERE seq = $1`
	setAsideSQL = `UPDATE outbox SET attempts = attempts + 1, last_error = $2, dead_at = now() WHERE seq = $1`
	oldestSQL   = `SELECT created_at FROM outbox WHERE published_at IS NULL AND dead_at IS NULL ORDER BY seq LIMIT 1`
	// Published rows go after a day; rows set aside are kept a month for whoever looks into them.
	pruneSQL = `DELETE FROM outbox WHERE published_at < now() - interval '24 hours' OR dead_at < now() - interval '30 days'`
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

// Relay publishes pending outbox rows, in order, each until JetStream acknowledges it.
//
// No row may hold up the rows behind it. A row JetStream will never take (a subject that
// is not natsx.ValidSubject, a payload over the server's limit, a request JetStream calls
// bad) is set aside at once: dead_at and last_error are set, setAsideTotal counts it, an
// error is logged, and the relay goes on. A row that fails for another reason (a timeout,
// a refusal that may pass) is retried, while the rows behind it go out in the same round;
// if it fails MaxAttempts times in rounds where other rows were acknowledged (so JetStream
// was up, and the fault is the row's), it is set aside too. When every row fails (NATS is
// down), or a row's stream is missing, nothing is set aside: those rows wait.
type Relay struct {
	pool *pgxpool.Pool
	js   jetstream.JetStream
	log  *zap.Logger
	wake chan struct{}
	// oldest is when the oldest pending row was written (unix nanoseconds), 0 for none,
	// as last seen by Run.
	oldest atomic.Int64
	// Poll is the fallback interval: it retries failed publishes and picks up rows another
	// replica wrote and could not publish. The normal path is Notify, right after commit.
	Poll time.Duration
	// Batch is how many events go out before their acks are awaited.
	Batch int
	// AckWait bounds the wait for one batch's acks; a row not acknowledged by then failed.
	AckWait time.Duration
	// MaxAttempts is how many rounds a row may fail while later rows go through before it
	// is set aside.
	MaxAttempts int
	// StuckAfter is the age of the oldest pending row past which Ready reports false.
	StuckAfter time.Duration
	// FlushTimeout bounds the last publish round when Run's context ends (shutdown), which
	// publishes what the calls finished during the grace period committed.
	FlushTimeout time.Duration
}

// NewRelay returns a relay over the service's pool, with defaults: Poll 1 s, Batch 256,
// AckWait 5 s, MaxAttempts 5, StuckAfter 1 min, FlushTimeout 5 s.
func NewRelay(pool *pgxpool.Pool, js jetstream.JetStream, log *zap.Logger) *Relay {
	return &Relay{
		pool: pool, js: js, log: log, wake: make(chan struct{}, 1),
		Poll: time.Second, Batch: 256, AckWait: 5 * time.Second, MaxAttempts: 5,
		StuckAfter: time.Minute, FlushTimeout: 5 * time.Second,
	}
}

// Notify wakes the relay; call it after a transaction that added events commits.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Ready reports whether the relay keeps up: false while a row has been pending for longer
// than StuckAfter, so a stuck relay shows in /healthz (latchkey_outbox_oldest_pending_seconds
// shows the age).
func (r *Relay) Ready() bool {
	age := r.pendingAge()
	return age < r.StuckAfter
}

// pendingAge is the age of the oldest pending row, 0 for none.
func (r *Relay) pendingAge() time.Duration {
	oldest := r.oldest.Load()
	if oldest == 0 {
		return 0
	}
	return time.Since(time.Unix(0, oldest))
}

// Run publishes until ctx ends, then publishes what is still pending for up to
// FlushTimeout: server.Run stops workers only after in-flight calls are done, so this last
// round sends the events those calls committed.
func (r *Relay) Run(ctx context.Context) error {
	running.Store(r, struct{}{})
	defer running.Delete(r)
	tick := time.NewTicker(r.Poll)
	defer tick.Stop()
	lastPrune := time.Now()
	for ctx.Err() == nil {
		if err := r.publishAll(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("outbox: publish failed; will retry", zap.Error(err))
		}
		r.checkOldest(ctx)
		if time.Since(lastPrune) > time.Hour {
			if _, err := r.pool.Exec(ctx, pruneSQL); err != nil && ctx.Err() == nil {
				r.log.Warn("outbox: prune failed", zap.Error(err))
			}
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-tick.C:
		}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.FlushTimeout)
	defer cancel()
	if err := r.publishAll(fctx); err != nil {
		r.log.Warn("outbox: events left unpublished at shutdown; the next start publishes them", zap.Error(err))
	}
	return nil
}

// publishAll publishes batches until fewer than Batch rows were left, or one failed.
func (r *Relay) publishAll(ctx context.Context) error {
	for {
		n, err := r.drain(ctx)
		if err != nil || n < r.Batch {
			return err
		}
	}
}

// checkOldest records when the oldest pending row was written.
func (r *Relay) checkOldest(ctx context.Context) {
	var at time.Time
	err := r.pool.QueryRow(ctx, oldestSQL).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		r.oldest.Store(0)
	case err == nil:
		r.oldest.Store(at.UnixNano())
	}
}

// pending is one row of a publish round.
type pending struct {
	seq      int64
	eventID  string
	subject  string
	payload  []byte
	attempts int
	future   jetstream.PubAckFuture
	err      error
	reason   string // why it is set aside; "" when it is not
}

// drain publishes one batch of pending rows and records the outcome of each in one
// transaction: published, failed (retried later) or set aside. It returns how many rows
// it settled (published or set aside) and the first error that leaves a row pending.
func (r *Relay) drain(ctx context.Context) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	batch, err := r.lockPending(ctx, tx)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	for i, p := range batch {
		if !natsx.ValidSubject(p.subject) {
			p.err = errInvalidSubject
			continue
		}
		msg := &nats.Msg{Subject: p.subject, Data: p.payload, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, p.eventID)
		p.future, p.err = r.js.PublishMsgAsync(msg)
		if p.err != nil && !permanent(p.err) {
			// The connection, not the row: later rows would fail alike. Leave them.
			batch = batch[:i+1]
			break
		}
	}
	wctx, cancel := context.WithTimeout(ctx, r.AckWait)
	defer cancel()
	acked := make([]int64, 0, len(batch))
	for _, p := range batch {
		if p.future == nil {
			continue
		}
		if p.err = awaitAck(wctx, p.future); p.err == nil {
			acked = append(acked, p.seq)
		}
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	var (
		firstErr error
		setAside []*pending
		q        = &pgx.Batch{}
	)
	if len(acked) > 0 {
		q.Queue(markSQL, acked)
	}
	for _, p := range batch {
		if p.err == nil {
			continue
		}
		// A failure counts against the row only when JetStream had it (no connection
		// error) and other rows went through, and never a missing stream: that is the
		// stream's fault, and every row on it fails alike.
		strike := len(acked) > 0 && p.future != nil && !permanent(p.err) && !streamMissing(p.err)
		reason := ""
		switch {
		case errors.Is(p.err, errInvalidSubject):
			reason = "invalid_subject"
		case permanent(p.err):
			reason = "refused"
		case strike && p.attempts+1 >= r.MaxAttempts:
			reason = "retries_exhausted"
		}
		if reason == "" {
			if firstErr == nil {
				firstErr = p.err
			}
			q.Queue(failSQL, p.seq, btoi(strike), truncate(p.err.Error(), 500))
			continue
		}
		p.reason = reason
		setAside = append(setAside, p)
		q.Queue(setAsideSQL, p.seq, truncate(reason+": "+p.err.Error(), 500))
	}
	if err := tx.SendBatch(ctx, q).Close(); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	for _, p := range setAside {
		setAsideTotal.WithLabelValues(p.reason).Inc()
		// Not the subject: it may hold whatever a caller sent.
		r.log.Error("outbox: event set aside, it will not be published; later events go on",
			zap.Int64("seq", p.seq), zap.String("event_id", truncate(p.eventID, 64)),
			zap.String("reason", p.reason), zap.Int("attempts", p.attempts+1), zap.Error(p.err))
	}
	return len(acked) + len(setAside), firstErr
}

// lockPending reads and locks up to Batch pending rows, oldest first.
func (r *Relay) lockPending(ctx context.Context, tx pgx.Tx) ([]*pending, error) {
	rows, err := tx.Query(ctx, pendingSQL, r.Batch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var batch []*pending
	for rows.Next() {
		p := &pending{}
		if err := rows.Scan(&p.seq, &p.eventID, &p.subject, &p.payload, &p.attempts); err != nil {
			return nil, err
		}
		batch = append(batch, p)
	}
	return batch, rows.Err()
}

// awaitAck waits for one publish's ack until ctx ends; an ack already in wins over ctx.
func awaitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	default:
	}
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return errAckTimeout
	}
}

var (
	errInvalidSubject = errors.New("subject is not valid (natsx.ValidSubject)")
	errAckTimeout     = errors.New("no ack from JetStream in time")
)

// permanent reports whether JetStream will never take the message, however often it is
// sent: a subject the client refuses, a payload over the server's max_payload, a message
// over the stream's limit, a request JetStream calls bad. Timeouts, disconnects and a
// missing stream (ErrNoStreamResponse) are not: they pass, or are the stream's fault.
func permanent(err error) bool {
	if errors.Is(err, errInvalidSubject) || errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamMessageExceedsMaximum, jetstream.JSErrCodeBadRequest:
			return true
		}
	}
	return false
}

// streamMissing reports a publish no stream answered: the stream is gone (or was never
// made), which says nothing against the row.
func streamMissing(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
