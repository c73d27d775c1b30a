package accounts_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
)

// env is one running accounts service on its own database and NATS namespace.
type env struct {
	t        *testing.T
	cfg      accounts.Config
	api      *testutil.Client // the REST API
	grpcAddr string
	conn     *grpc.ClientConn
	js       jetstream.JetStream
	logs     *observer.ObservedLogs
}

// start runs the service (New + server.Run on port 0) until the test ends.
func start(t *testing.T, opts ...func(*accounts.Config)) *env {
	t.Helper()
	cfg := accounts.Config{
		Common: settings.Common{
			NATSURL:       testutil.NATSURL(),
			Namespace:     testutil.Namespace(t),
			OperatorToken: "op-" + testutil.Suffix() + testutil.Suffix(),
			ShutdownGrace: 2 * time.Second,
		},
		Postgres:     settings.Postgres{DatabaseURL: testutil.DatabaseURL(t)},
		GRPCAddr:     "127.0.0.1:0",
		HTTPAddr:     "127.0.0.1:0",
		SessionTTL:   24 * time.Hour,
		StepUpWindow: 5 * time.Minute,
		TrialPeriod:  720 * time.Hour,
	}
	for _, o := range opts {
		o(&cfg)
	}
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)

	a, stop, err := testutil.Background(t, func(ctx context.Context, listening func(map[string]string)) error {
		u, err := accounts.New(ctx, cfg, log)
		if err != nil {
			return err
		}
		return server.Run(ctx, server.RunConfig{Logger: log, HTTPAddr: cfg.HTTPAddr, Grace: cfg.ShutdownGrace, OnListening: listening}, u)
	})
	if err != nil {
		t.Fatalf("accounts did not start: %v", err)
	}

	e := &env{t: t, cfg: cfg, api: testutil.NewClient(t, "http://"+a["rest"]), grpcAddr: a["accounts grpc"], logs: logs}
	e.conn, err = grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	nc, err := natsx.Connect(cfg.NATSURL, "accounts-test", zap.NewNop())
	require.NoError(t, err)
	e.js, err = jetstream.New(nc)
	require.NoError(t, err)

	t.Cleanup(func() {
		_ = e.conn.Close()
		stop()
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_ = e.js.DeleteStream(dctx, natsx.EventsStream(cfg.Namespace))
		nc.Close()
		if t.Failed() {
			for _, l := range logs.All() {
				t.Logf("log: %s %s %v", l.Level, l.Message, l.ContextMap())
			}
		}
	})
	e.api.WaitHealthy()
	return e
}

func strs(m map[string]any, path ...string) []string {
	list, _ := testutil.Lookup(m, path...).([]any)
	out := make([]string, 0, len(list))
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func timeAt(t *testing.T, m map[string]any, path ...string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, testutil.Str(m, path...))
	require.NoError(t, err, "%v at %v", m, path)
	return ts
}

func (e *env) createProject(tok string, body map[string]any) map[string]any {
	e.t.Helper()
	return e.api.Call("POST", "/v1/projects", tok, body).OK(e.t)["project"].(map[string]any)
}

func (e *env) internal() accountsv1.InternalServiceClient {
	return accountsv1.NewInternalServiceClient(e.conn)
}

func (e *env) operatorCtx() context.Context {
	return auth.OutgoingBearer(context.Background(), e.cfg.OperatorToken)
}

// expireSession moves a session's expiry into the past, straight in the database.
func (e *env) expireSession(tok string) {
	e.t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.cfg.DatabaseURL)
	require.NoError(e.t, err)
	defer func() { _ = c.Close(ctx) }()
	h := sha256.Sum256([]byte(tok))
	tag, err := c.Exec(ctx, `UPDATE accounts.sessions SET expires_at = now() - interval '1 minute' WHERE token_hash = $1`, h[:])
	require.NoError(e.t, err)
	require.EqualValues(e.t, 1, tag.RowsAffected())
}

// lastEvent waits until the events stream's last message on kind's subject satisfies ok.
func (e *env) lastEvent(kind string, ok func(*eventsv1.Event) bool) *eventsv1.Event {
	e.t.Helper()
	ctx := context.Background()
	subject := natsx.EventSubject(e.cfg.Namespace, kind)
	var got *eventsv1.Event
	testutil.Eventually(e.t, 10*time.Second, func() bool {
		st, err := e.js.Stream(ctx, natsx.EventsStream(e.cfg.Namespace))
		if err != nil {
			return false
		}
		msg, err := st.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return false
		}
		ev := &eventsv1.Event{}
		if proto.Unmarshal(msg.Data, ev) != nil {
			return false
		}
		got = ev
		return ok(ev)
	}, "a "+kind+" event")
	return got
}

// requireNoSecretsLogged fails if any log line holds one of secrets.
func (e *env) requireNoSecretsLogged(secrets ...string) {
	e.t.Helper()
	require.NotZero(e.t, e.logs.Len(), "expected some log lines")
	for _, l := range e.logs.All() {
		line := fmt.Sprintf("%s %v", l.Message, l.ContextMap())
		for _, s := range secrets {
			require.NotContains(e.t, line, s, "a secret was logged")
		}
	}
}

// eventCounts is the number of messages in the events stream per event kind.
func (e *env) eventCounts() map[string]uint64 {
	e.t.Helper()
	st, err := e.js.Stream(e.t.Context(), natsx.EventsStream(e.cfg.Namespace))
	require.NoError(e.t, err)
	info, err := st.Info(e.t.Context(), jetstream.WithSubjectFilter(e.cfg.Namespace+".events.>"))
	require.NoError(e.t, err)
	out := map[string]uint64{}
	for subject, n := range info.State.Subjects {
		out[strings.TrimPrefix(subject, e.cfg.Namespace+".events.")] = n
	}
	return out
}

// requireOutboxDrained waits until every outbox row has been published.
func (e *env) requireOutboxDrained() {
	e.t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, e.cfg.DatabaseURL)
	require.NoError(e.t, err)
	defer func() { _ = c.Close(ctx) }()
	testutil.Eventually(e.t, 10*time.Second, func() bool {
		var n int
		return c.QueryRow(ctx, `SELECT count(*) FROM accounts.outbox WHERE published_at IS NULL`).Scan(&n) == nil && n == 0
	}, "the outbox to drain")
}
