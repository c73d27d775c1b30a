package outbox_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/outbox"
	tu "github.com/latchkey/latchkey/pkg/testutil"
)

// row is one outbox row as a test sees it.
type row struct {
	subject   string
	published bool
	setAside  bool
	attempts  int
	lastError string
}

func rows(t *testing.T, pool *pgxpool.Pool) []row {
	t.Helper()
	rs, err := pool.Query(context.Background(), `SELECT subject, published_at IS NOT NULL, dead_at IS NOT NULL, attempts,
		coalesce(last_error, '') FROM outbox ORDER BY seq`)
	require.NoError(t, err)
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		require.NoError(t, rs.Scan(&r.subject, &r.published, &r.setAside, &r.attempts, &r.lastError))
		out = append(out, r)
	}
	require.NoError(t, rs.Err())
	return out
}

// add writes one message on subject, alone (as the audit hook does).
func add(t *testing.T, pool *pgxpool.Pool, subject string, payload []byte) {
	t.Helper()
	require.NoError(t, outbox.AddMessage(context.Background(), pool, ids.New(ids.Event), subject, wrapperspb.Bytes(payload)))
}

// relayEnv is a pool, a JetStream connection and a relay of a test's own.
type relayEnv struct {
	ns    string
	pool  *pgxpool.Pool
	nc    *nats.Conn
	js    jetstream.JetStream
	logs  *observer.ObservedLogs
	relay *outbox.Relay
	stop  func()
}

func newRelayEnv(t *testing.T) *relayEnv {
	t.Helper()
	e := &relayEnv{ns: tu.Namespace(t), pool: tu.DB(t, "outboxtest", outbox.Migrations)}
	var err error
	e.nc, err = natsx.Connect(tu.NATSURL(), "outbox-test", zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(e.nc.Close)
	e.js, err = jetstream.New(e.nc)
	require.NoError(t, err)
	return e
}

// run starts a fresh relay (a restart, when one ran before).
func (e *relayEnv) run(t *testing.T, configure func(*outbox.Relay)) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	e.logs = logs
	e.relay = outbox.NewRelay(e.pool, e.js, zap.New(core))
	e.relay.Poll = 20 * time.Millisecond
	e.relay.AckWait = time.Second
	if configure != nil {
		configure(e.relay)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.relay.Run(ctx) }()
	e.stop = func() {
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(cancel)
}

func (e *relayEnv) streamCount(t *testing.T, stream jetstream.Stream, subject string) uint64 {
	t.Helper()
	info, err := stream.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	require.NoError(t, err)
	return info.State.Subjects[subject]
}

// TestPoisonRowsDoNotBlockLaterRows: rows JetStream can never take (a space in the subject,
// a wildcard, an empty token, 5,000 characters, a payload over max_payload) are set aside,
// counted and logged as errors, and every good row around them is published, with the
// connection never dropped. A restarted relay leaves the set-aside rows alone.
func TestPoisonRowsDoNotBlockLaterRows(t *testing.T) {
	e := newRelayEnv(t)
	stream, err := natsx.EnsureEventsStream(context.Background(), e.js, e.ns)
	require.NoError(t, err)
	good := natsx.EventSubject(e.ns, "key.revoked")
	poison := []string{
		e.ns + ".events.a b", e.ns + ".events.*", e.ns + ".events..x",
		e.ns + ".events." + strings.Repeat("a", 5000),
	}
	before := testutil.ToFloat64(outbox.SetAsideTotal.WithLabelValues("invalid_subject")) + testutil.ToFloat64(outbox.SetAsideTotal.WithLabelValues("refused"))
	add(t, e.pool, good, []byte("first"))
	for _, s := range poison {
		add(t, e.pool, s, []byte("poison"))
		add(t, e.pool, good, []byte("after "+s[:min(len(s), 40)]))
	}
	add(t, e.pool, good, make([]byte, int(e.nc.MaxPayload())+1)) // over max_payload
	add(t, e.pool, good, []byte("last"))

	e.run(t, nil)
	e.relay.Notify()
	want := uint64(len(poison) + 2)
	tu.Eventually(t, 10*time.Second, func() bool { return e.streamCount(t, stream, good) == want }, "every good row in the stream")
	tu.Eventually(t, 10*time.Second, func() bool {
		for _, r := range rows(t, e.pool) {
			if !r.published && !r.setAside {
				return false
			}
		}
		return true
	}, "every row published or set aside")
	var setAside int
	for _, r := range rows(t, e.pool) {
		if r.setAside {
			setAside++
			require.False(t, r.published)
			require.NotEmpty(t, r.lastError)
		} else {
			require.Equal(t, good, r.subject)
		}
	}
	require.Equal(t, len(poison)+1, setAside)
	require.Equal(t, float64(setAside), testutil.ToFloat64(outbox.SetAsideTotal.WithLabelValues("invalid_subject"))+testutil.ToFloat64(outbox.SetAsideTotal.WithLabelValues("refused"))-before)
	require.Len(t, e.logs.FilterLevelExact(zapcore.ErrorLevel).FilterMessageSnippet("set aside").All(), setAside)
	require.Zero(t, e.nc.Stats().Reconnects, "no publish may cost the connection")
	require.True(t, e.relay.Ready())

	// A restart publishes new rows and leaves the set-aside ones alone.
	e.stop()
	snapshot := rows(t, e.pool)
	add(t, e.pool, good, []byte("after restart"))
	e.run(t, nil)
	e.relay.Notify()
	tu.Eventually(t, 10*time.Second, func() bool { return e.streamCount(t, stream, good) == want+1 }, "the row written after the restart")
	require.Equal(t, snapshot, rows(t, e.pool)[:len(snapshot)], "set-aside rows stay as they were")
}

// TestRowFailingWhileOthersPassIsSetAside: a row JetStream refuses for a reason of its own
// that is not final (here its subject is full: one message per subject, discard new) is
// retried, and set aside once it has failed MaxAttempts times in rounds where later rows
// went through; the later rows are published in the meantime.
func TestRowFailingWhileOthersPassIsSetAside(t *testing.T) {
	e := newRelayEnv(t)
	ctx := context.Background()
	stream, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: natsx.EventsStream(e.ns), Subjects: []string{e.ns + ".events.>"}, Storage: jetstream.MemoryStorage,
		MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
	})
	require.NoError(t, err)
	full := natsx.EventSubject(e.ns, "key.full")
	_, err = e.js.Publish(ctx, full, []byte("fills the subject"))
	require.NoError(t, err)

	add(t, e.pool, full, []byte("refused while the subject is full"))
	add(t, e.pool, natsx.EventSubject(e.ns, "key.a"), []byte("a"))
	e.run(t, func(r *outbox.Relay) { r.MaxAttempts = 2 })
	e.relay.Notify()
	tu.Eventually(t, 10*time.Second, func() bool { return e.streamCount(t, stream, natsx.EventSubject(e.ns, "key.a")) == 1 }, "the row behind to go out")
	tu.Eventually(t, 10*time.Second, func() bool { return rows(t, e.pool)[0].attempts == 1 }, "one strike against the full row")
	require.False(t, rows(t, e.pool)[0].setAside, "one strike is not enough")
	// Rounds without another row to publish are no evidence against it.
	for range 3 {
		e.relay.Notify()
	}
	add(t, e.pool, natsx.EventSubject(e.ns, "key.b"), []byte("b"))
	e.relay.Notify()
	tu.Eventually(t, 10*time.Second, func() bool { return rows(t, e.pool)[0].setAside }, "the full row set aside")
	r := rows(t, e.pool)
	require.Equal(t, 2, r[0].attempts)
	require.Contains(t, r[0].lastError, "retries_exhausted")
	require.True(t, r[2].published)
}

// TestMissingStreamSetsNothingAside: while one stream is missing (its rows fail with no
// responders) and another takes its rows, the missing stream's rows are retried, never set
// aside, and go out once the stream is back. Meanwhile the relay is not Ready once its
// oldest pending row is older than StuckAfter.
func TestMissingStreamSetsNothingAside(t *testing.T) {
	e := newRelayEnv(t)
	ctx := context.Background()
	audit, err := natsx.EnsureAuditStream(ctx, e.js, e.ns)
	require.NoError(t, err)
	e.run(t, func(r *outbox.Relay) { r.MaxAttempts = 1; r.StuckAfter = 300 * time.Millisecond })
	require.True(t, e.relay.Ready())
	for i := range 3 {
		add(t, e.pool, natsx.EventSubject(e.ns, "key.revoked"), []byte("event"))
		add(t, e.pool, natsx.AuditSubject(e.ns, ""), []byte("audit"))
		e.relay.Notify()
		tu.Eventually(t, 10*time.Second, func() bool {
			return e.streamCount(t, audit, natsx.AuditSubject(e.ns, "")) == uint64(i+1)
		}, "the audit row to go out")
	}
	for _, r := range rows(t, e.pool) {
		require.False(t, r.setAside, "%+v", r)
	}
	tu.Eventually(t, 10*time.Second, func() bool { return !e.relay.Ready() }, "the stuck relay to say so")
	events, err := natsx.EnsureEventsStream(ctx, e.js, e.ns)
	require.NoError(t, err)
	tu.Eventually(t, 10*time.Second, func() bool {
		return e.streamCount(t, events, natsx.EventSubject(e.ns, "key.revoked")) == 3
	}, "the events to go out once their stream is back")
	tu.Eventually(t, 10*time.Second, e.relay.Ready, "the relay to be ready again")
}
