package auditlog

import (
	"context"
	"errors"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
)

const (
	suspend = "/latchkey.accounts.v1.AdminService/SuspendAccount"
	getKey  = "/latchkey.keys.v1.KeysService/GetKey"
)

var actions = map[string]Action{
	suspend: {Name: "admin.suspend", Resource: "account", ResourceID: []string{"account_id"}, Account: []string{"account_id"}},
	getKey:  {Name: "keys.get", Resource: "key", ResourceID: []string{"id"}},
}

// changes is the table a test "change" writes to.
var changes = fstest.MapFS{"0001_changes.sql": {Data: []byte(`CREATE TABLE changes (id text PRIMARY KEY);`)}}

func newRecorder(t *testing.T) (*Recorder, *pgxpool.Pool) {
	pool := testutil.DB(t, "svc", outbox.Migrations, changes)
	return New(pool, "ns", func() {}, zap.NewNop(), actions), pool
}

// auditRows decodes the audit events in the outbox, in the order they were written.
func auditRows(t *testing.T, pool *pgxpool.Pool) []*auditv1.AuditEvent {
	rows, err := pool.Query(context.Background(), `SELECT payload FROM outbox ORDER BY seq`)
	require.NoError(t, err)
	payloads, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	require.NoError(t, err)
	out := make([]*auditv1.AuditEvent, len(payloads))
	for i, p := range payloads {
		out[i] = &auditv1.AuditEvent{}
		require.NoError(t, proto.Unmarshal(p, out[i]))
	}
	return out
}

func countChanges(t *testing.T, pool *pgxpool.Pool) int {
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM changes`).Scan(&n))
	return n
}

// TestChangeAndItsAuditEventCommitTogether: the event of a change is written in the
// change's transaction; it is in the outbox the moment the change commits (no window for
// a crash to lose it), and a change that rolls back leaves no "ok" event behind, only the
// failure the caller saw.
func TestChangeAndItsAuditEventCommitTogether(t *testing.T) {
	r, pool := newRecorder(t)
	icpt := r.Interceptor()
	ctx := auth.With(requestid.With(context.Background(), "req-1", true), &auth.Principal{Kind: auth.KindOperator})
	info := &grpc.UnaryServerInfo{FullMethod: suspend}
	req := &accountsv1.SuspendAccountRequest{AccountId: "acc_1"}

	change := func(ctx context.Context, fail error) error {
		return postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO changes VALUES ($1)`, "c"+testutil.Suffix()); err != nil {
				return err
			}
			if err := Record(ctx, tx, Facts{}); err != nil {
				return err
			}
			return fail
		})
	}

	// Committed: the event is there before the interceptor gets the call back.
	_, err := icpt(ctx, req, info, func(ctx context.Context, _ any) (any, error) {
		require.NoError(t, change(ctx, nil))
		evs := auditRows(t, pool)
		require.Len(t, evs, 1, "the audit event must commit with the change")
		require.Equal(t, "ok", evs[0].GetResult())
		return &accountsv1.SuspendAccountResponse{}, nil
	})
	require.NoError(t, err)
	evs := auditRows(t, pool)
	require.Len(t, evs, 1, "one event per call")
	require.Equal(t, "acc_1", evs[0].GetAccountId())
	require.Equal(t, "acc_1", evs[0].GetResourceId())
	require.Equal(t, 1, countChanges(t, pool))

	// Rolled back after the change's write: neither the change nor an "ok" event.
	_, err = icpt(ctx, req, info, func(ctx context.Context, _ any) (any, error) {
		return nil, change(ctx, apierr.New(apierr.Conflict, "lost a race"))
	})
	require.Error(t, err)
	require.Equal(t, 1, countChanges(t, pool))
	evs = auditRows(t, pool)
	require.Len(t, evs, 2)
	require.Equal(t, string(apierr.Conflict), evs[1].GetResult())
	require.Equal(t, "", evs[1].GetAccountId(), "a failed operator call files under no account")

	// Nothing recorded in a transaction (a read): written after the call.
	_, err = icpt(ctx, &keysv1.GetKeyRequest{Id: "key_1"}, &grpc.UnaryServerInfo{FullMethod: getKey},
		func(context.Context, any) (any, error) { return &keysv1.GetKeyResponse{}, nil })
	require.NoError(t, err)
	require.Len(t, auditRows(t, pool), 3)

	// A panic is recorded as the internal error the client gets, and passed on.
	require.Panics(t, func() {
		_, _ = icpt(ctx, req, info, func(context.Context, any) (any, error) { panic("boom") })
	})
	evs = auditRows(t, pool)
	require.Len(t, evs, 4)
	require.Equal(t, string(apierr.Internal), evs[3].GetResult())

	// OnCall leaves calls the chain saw to the interceptor, and records what the REST
	// bridge refused before any handler ran.
	r.OnCall(grpc.NewContextWithServerTransportStream(ctx, fakeStream{suspend}), server.Call{Method: suspend, Code: "invalid_argument"})
	require.Len(t, auditRows(t, pool), 4)
	r.OnCall(ctx, server.Call{Method: suspend, Code: "invalid_argument", Request: req})
	require.Len(t, auditRows(t, pool), 5)

	// Record outside an audited call does nothing.
	require.NoError(t, change(context.Background(), nil))
	require.Len(t, auditRows(t, pool), 5)
}

type fakeStream struct{ method string }

func (f fakeStream) Method() string             { return f.method }
func (fakeStream) SetHeader(metadata.MD) error  { return nil }
func (fakeStream) SendHeader(metadata.MD) error { return nil }
func (fakeStream) SetTrailer(metadata.MD) error { return nil }

// TestOnlyTheAuthenticatedFileUnderAnAccount: an account id a request merely names (an
// operator route called with no or a bad token, say) never decides whose log an event
// goes to; the caller's own account, a successful response, or a successful operator call
// does.
func TestOnlyTheAuthenticatedFileUnderAnAccount(t *testing.T) {
	a := actions[suspend]
	req := &accountsv1.SuspendAccountRequest{AccountId: "acc_victim"}
	op := &auth.Principal{Kind: auth.KindOperator}
	user := &auth.Principal{Kind: auth.KindUser, AccountID: "acc_caller", UserID: "usr_1"}
	for _, tc := range []struct {
		name string
		c    server.Call
		want string
	}{
		{"no credentials", server.Call{Request: req, Code: "unauthenticated"}, ""},
		{"bad credentials", server.Call{Request: req, Code: "unauthenticated", AuthErr: errors.New("bad token")}, ""},
		{"refused with a principal of another account", server.Call{Request: req, Principal: user, Code: "permission_denied"}, "acc_caller"},
		{"operator, failed", server.Call{Request: req, Principal: op, Code: "not_found"}, ""},
		{"operator, succeeded", server.Call{Request: req, Principal: op, Code: "ok", Response: &accountsv1.SuspendAccountResponse{}}, "acc_victim"},
		{"unauthenticated, but it succeeded", server.Call{Request: req, Code: "ok", Response: &accountsv1.SuspendAccountResponse{}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Event(context.Background(), a, tc.c).GetAccountId())
		})
	}
	signUp := Action{Name: "accounts.signup", Resource: "account", ResourceID: []string{"account.id"}, Account: []string{"account.id"}}
	resp := &accountsv1.SignUpResponse{Account: &accountsv1.Account{Id: "acc_new"}}
	require.Equal(t, "acc_new", Event(context.Background(), signUp, server.Call{Code: "ok", Response: resp}).GetAccountId())
}

// TestEventsKeepNoKey: a secret pasted where an id belongs is redacted from the resource
// id, the details and the error message an event keeps.
func TestEventsKeepNoKey(t *testing.T) {
	for _, typ := range []string{"ingest", "account"} {
		secret, err := keyformat.Default().Generate(typ)
		require.NoError(t, err)
		a := Action{Name: "keys.get", Resource: "key", ResourceID: []string{"id"}, Details: map[string]string{"asked": "id"}}
		c := server.Call{
			Request: &keysv1.GetKeyRequest{Id: secret}, Code: "invalid_argument",
			Message: `id "` + secret + `" is not a key id`,
		}
		ev := Event(context.Background(), a, c)
		b, err := proto.Marshal(ev)
		require.NoError(t, err)
		require.NotContains(t, string(b), secret[len(secret)-20:])
		require.Contains(t, ev.GetResourceId(), keyformat.Redacted)
		require.Contains(t, ev.GetDetails()["message"], keyformat.Redacted)
		require.Contains(t, ev.GetDetails()["asked"], keyformat.Redacted)
	}
}

// TestRecordByFilesUnderTheNamedAccount: a change made outside any audited call (a signed
// leak report) is recorded with the change's transaction, under the account and actor it
// names, redacted, and rolls back with the change.
func TestRecordByFilesUnderTheNamedAccount(t *testing.T) {
	_, pool := newRecorder(t)
	ctx := requestid.With(context.Background(), "req-leak", true)
	key, err := keyformat.Default().Generate("ingest")
	require.NoError(t, err)
	actor := &auditv1.Actor{Type: ActorSecretScanning}
	exposed := Action{Name: "keys.exposed", Resource: "key"}
	owner := ids.New(ids.Account)
	write := func(fail error) error {
		return postgres.InTx(ctx, pool, func(tx pgx.Tx) error {
			err := RecordBy(ctx, tx, "ns", actor, exposed, Facts{
				AccountID: owner, ResourceID: "key_1",
				Details: map[string]string{"url": "https://github.com/o/r/blob/x/.env#" + key},
			})
			if err != nil {
				return err
			}
			return fail
		})
	}
	require.Error(t, write(errors.New("rolled back")))
	require.Empty(t, auditRows(t, pool))

	require.NoError(t, write(nil))
	evs := auditRows(t, pool)
	require.Len(t, evs, 1)
	ev := evs[0]
	require.Equal(t, owner, ev.GetAccountId())
	require.Equal(t, ActorSecretScanning, ev.GetActor().GetType())
	require.Empty(t, ev.GetActor().GetId())
	require.Equal(t, "keys.exposed", ev.GetAction())
	require.Equal(t, "key", ev.GetResourceType())
	require.Equal(t, "key_1", ev.GetResourceId())
	require.Equal(t, "ok", ev.GetResult())
	require.Equal(t, "req-leak", ev.GetRequestId())
	require.NotContains(t, ev.GetDetails()["url"], key, "redacted")
	require.Contains(t, ev.GetDetails()["url"], "lk_ing_"+keyformat.Redacted)

	var subject string
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT subject FROM outbox`).Scan(&subject))
	require.Equal(t, "ns.audit."+owner, subject)
}
