package audit_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/keys"
)

// env is an audit service with the real accounts service (and, when asked, keys) beside
// it, on one test database. accounts and keys use a NATS namespace of their own, so the
// audit events they may emit never mix with the ones a test publishes.
type env struct {
	t        testing.TB
	dbURL    string
	ns       string // the audit service's namespace
	operator string

	accounts *unit
	keys     *unit
	audit    *unit
	cfg      audit.Config

	nc     *nats.Conn
	js     jetstream.JetStream
	client auditv1.AuditServiceClient
	super  *pgx.Conn // the database's superuser, no SET ROLE
}

type options struct {
	keys  bool
	audit func(*audit.Config)
}

func withKeys() func(*options) { return func(o *options) { o.keys = true } }

func withAudit(f func(*audit.Config)) func(*options) { return func(o *options) { o.audit = f } }

// unit is one running service.
type unit struct {
	api  *testutil.Client // its REST API
	grpc string
	logs *observer.ObservedLogs
	stop func()
}

// newEnv starts accounts (and keys) then audit, stopped when the test ends.
func newEnv(t testing.TB, opts ...func(*options)) *env {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	e := &env{
		t: t, dbURL: testutil.DatabaseURL(t), ns: testutil.Namespace(t),
		operator: "op-" + testutil.Suffix() + testutil.Suffix(),
	}
	servicesNS := testutil.Namespace(t)

	acfg, err := accounts.ConfigFromEnv()
	require.NoError(t, err)
	acfg.GRPCAddr, acfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	acfg.DatabaseURL, acfg.NATSURL, acfg.Namespace = e.dbURL, testutil.NATSURL(), servicesNS
	acfg.OperatorToken = e.operator
	e.accounts = run(t, "accounts", func(ctx context.Context, log *zap.Logger) (*server.Unit, error) {
		return accounts.New(ctx, acfg, log)
	})

	keysAddr := "127.0.0.1:1" // nothing listens there: account keys are unverifiable
	if o.keys {
		kcfg, err := keys.ConfigFromEnv()
		require.NoError(t, err)
		kcfg.GRPCAddr, kcfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
		kcfg.DatabaseURL, kcfg.NATSURL, kcfg.Namespace = e.dbURL, testutil.NATSURL(), servicesNS
		kcfg.OperatorToken, kcfg.AccountsAddr = e.operator, e.accounts.grpc
		kcfg.Pepper = "pepper-" + testutil.Suffix() + testutil.Suffix() + testutil.Suffix()
		e.keys = run(t, "keys", func(ctx context.Context, log *zap.Logger) (*server.Unit, error) {
			return keys.New(ctx, kcfg, log)
		})
		keysAddr = e.keys.grpc
	}

	e.cfg = audit.Config{
		Common: settings.Common{
			NATSURL:       testutil.NATSURL(),
			Namespace:     e.ns,
			OperatorToken: e.operator,
			ShutdownGrace: 2 * time.Second,
		},
		Postgres:           settings.Postgres{DatabaseURL: e.dbURL},
		AccountsPeer:       settings.AccountsPeer{AccountsAddr: e.accounts.grpc},
		KeysPeer:           settings.KeysPeer{KeysAddr: keysAddr},
		GRPCAddr:           "127.0.0.1:0",
		HTTPAddr:           "127.0.0.1:0",
		RetentionInterval:  time.Hour,
		RetentionFree:      720 * time.Hour,
		RetentionPro:       8760 * time.Hour,
		CheckpointEvery:    100,
		CheckpointInterval: time.Hour, // tests sign heads when they mean to: signHeads
	}
	if o.audit != nil {
		o.audit(&e.cfg)
	}
	e.startAudit()

	e.nc, err = natsx.Connect(testutil.NATSURL(), "audit-test", zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(e.nc.Close)
	e.js, err = jetstream.New(e.nc)
	require.NoError(t, err)

	ctx := context.Background()
	e.super, err = pgx.Connect(ctx, e.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.super.Close(context.Background()) })
	return e
}

// startAudit starts (again) an audit service on the env's database and stream.
func (e *env) startAudit() {
	e.t.Helper()
	cfg := e.cfg
	e.audit = run(e.t, "audit", func(ctx context.Context, log *zap.Logger) (*server.Unit, error) {
		return audit.New(ctx, cfg, log)
	})
	conn, err := grpc.NewClient(e.audit.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = conn.Close() })
	e.client = auditv1.NewAuditServiceClient(conn)
}

// run builds a unit and serves it (gRPC and REST on port 0) until stop or the test's end.
func run(t testing.TB, name string, build func(context.Context, *zap.Logger) (*server.Unit, error)) *unit {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	a, stop, err := testutil.Background(t, func(ctx context.Context, listening func(map[string]string)) error {
		u, err := build(ctx, log)
		if err != nil {
			return err
		}
		return server.Run(ctx, server.RunConfig{Logger: log, HTTPAddr: "127.0.0.1:0", Grace: 2 * time.Second, OnListening: listening}, u)
	})
	if err != nil {
		t.Fatalf("%s did not start: %v", name, err)
	}
	s := &unit{api: testutil.NewClient(t, "http://"+a["rest"]), grpc: a[name+" grpc"], logs: logs, stop: stop}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			for _, l := range logs.All() {
				if l.Level >= zap.WarnLevel {
					t.Logf("%s log: %s %s %v", name, l.Level, l.Message, l.ContextMap())
				}
			}
		}
	})
	s.api.WaitHealthy()
	return s
}

// get calls the audit service's REST API.
func (e *env) get(path, token string) testutil.Reply {
	e.t.Helper()
	return e.audit.api.Call("GET", path, token, nil)
}

// setPlan moves an account to a plan through the accounts service's operator call.
func (e *env) setPlan(accountID, plan string) {
	e.t.Helper()
	b := e.accounts.api.Call("POST", "/v1/admin/accounts/"+accountID+":setPlan", e.operator, map[string]any{"plan": plan}).OK(e.t)
	require.Equal(e.t, plan, testutil.Str(b, "account", "plan"))
}

// event makes an audit event of the account, as a service would hand it over.
func event(accountID string, at time.Time) *auditv1.AuditEvent {
	return &auditv1.AuditEvent{
		Id:           ids.New(ids.Audit),
		Time:         timestamppb.New(at),
		AccountId:    accountID,
		Actor:        &auditv1.Actor{Type: "user", Id: "usr_test"},
		Action:       "keys.create",
		ResourceType: "key",
		ResourceId:   "key_" + testutil.Suffix(),
		Result:       "ok",
		RequestId:    ids.New(ids.Request),
		ClientIp:     "192.0.2.7",
		UserAgent:    "audit-test/1",
		Details:      map[string]string{"name": "ci", "note": "first"},
	}
}

// publish hands events to JetStream as a service's outbox relay does: protobuf, on the
// account's subject, Nats-Msg-Id the event id; it returns once JetStream has them all.
func (e *env) publish(evs ...*auditv1.AuditEvent) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	for _, ev := range evs {
		data, err := proto.Marshal(ev)
		require.NoError(e.t, err)
		msg := &nats.Msg{Subject: natsx.AuditSubject(e.ns, ev.GetAccountId()), Data: data, Header: nats.Header{}}
		msg.Header.Set(nats.MsgIdHdr, ev.GetId())
		f, err := e.js.PublishMsgAsync(msg)
		require.NoError(e.t, err)
		futures = append(futures, f)
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-ctx.Done():
		e.t.Fatal("JetStream did not acknowledge the events")
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			e.t.Fatalf("publish: %v", err)
		}
	}
}

// appendEvent stores one event through Append, with the operator token.
func (e *env) appendEvent(ev *auditv1.AuditEvent) bool {
	e.t.Helper()
	resp, err := e.client.Append(auth.OutgoingBearer(context.Background(), e.operator), &auditv1.AppendRequest{Event: ev})
	require.NoError(e.t, err)
	return resp.GetStored()
}

// count is how many events of the account are stored, read as the superuser.
func (e *env) count(accountID string) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.super.QueryRow(context.Background(),
		`SELECT count(*) FROM audit.events WHERE account_id = $1`, accountID).Scan(&n))
	return n
}

// waitStored waits until the account has n events stored.
func (e *env) waitStored(accountID string, n int) {
	e.t.Helper()
	testutil.Eventually(e.t, 60*time.Second, func() bool { return e.count(accountID) >= n },
		fmt.Sprintf("%d events of %q to be stored", n, accountID))
	require.Equal(e.t, n, e.count(accountID), "events of %q stored", accountID)
}

// listAll walks every page of GET /v1/audit/events?query and returns the events.
func (e *env) listAll(token, query string) []map[string]any {
	e.t.Helper()
	var out []map[string]any
	cursor := ""
	for page := 0; ; page++ {
		require.Less(e.t, page, 100_000, "the walk never ends")
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		b := e.get("/v1/audit/events?"+q, token).OK(e.t)
		list, _ := b["events"].([]any)
		for _, v := range list {
			out = append(out, v.(map[string]any))
		}
		cursor = testutil.Str(b, "next_cursor")
		if cursor == "" {
			return out
		}
		require.NotEmpty(e.t, list, "a page with a next cursor has events")
	}
}

// verify calls GET /v1/audit/verify.
func (e *env) verify(token string) (ok bool, checked int, firstBad string) {
	e.t.Helper()
	b := e.get("/v1/audit/verify", token).OK(e.t)
	var n int
	_, err := fmt.Sscan(fmt.Sprint(b["events_checked"]), &n)
	require.NoError(e.t, err, "%v", b)
	return b["ok"] == true, n, testutil.Str(b, "first_bad_id")
}
