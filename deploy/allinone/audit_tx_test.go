package allinone

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// outboxRow is one row of a service's outbox, decoded.
type outboxRow struct {
	xmin  string // the transaction that inserted it (see noteOutboxWrites)
	audit *auditv1.AuditEvent
	event *eventsv1.Event
}

// noteOutboxWrites records which transaction inserts each outbox row of the schemas: the
// relay updates a row once it is published, which gives the row a new xmin.
func noteOutboxWrites(t *testing.T, pool *pgxpool.Pool, schemas ...string) {
	ctx := context.Background()
	_, err := pool.Exec(ctx, `CREATE TABLE public.outbox_writes (event_id text PRIMARY KEY, xid text NOT NULL);
		CREATE FUNCTION public.note_outbox_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO public.outbox_writes VALUES (NEW.event_id, (txid_current() % 4294967296)::text);
			RETURN NULL;
		END $$`)
	require.NoError(t, err)
	for _, schema := range schemas {
		_, err := pool.Exec(ctx, `CREATE TRIGGER note_writes AFTER INSERT ON `+schema+`.outbox
			FOR EACH ROW EXECUTE FUNCTION public.note_outbox_write()`)
		require.NoError(t, err)
	}
}

// outboxByRequest reads a schema's outbox, by request id.
func (s *suite) outboxByRequest(pool *pgxpool.Pool, schema string) map[string][]outboxRow {
	s.t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT w.xid, o.subject, o.payload FROM `+schema+`.outbox AS o
		JOIN public.outbox_writes AS w USING (event_id) ORDER BY o.seq`)
	require.NoError(s.t, err)
	out := map[string][]outboxRow{}
	var xmin, subject string
	var payload []byte
	_, err = pgx.ForEachRow(rows, []any{&xmin, &subject, &payload}, func() error {
		r := outboxRow{xmin: xmin}
		var rid string
		if strings.HasPrefix(subject, s.ns+".audit.") {
			r.audit = &auditv1.AuditEvent{}
			if err := proto.Unmarshal(payload, r.audit); err != nil {
				return err
			}
			rid = r.audit.GetRequestId()
		} else {
			r.event = &eventsv1.Event{}
			if err := proto.Unmarshal(payload, r.event); err != nil {
				return err
			}
			rid = r.event.GetRequestId()
		}
		out[rid] = append(out[rid], r)
		return nil
	})
	require.NoError(s.t, err)
	return out
}

// TestEveryChangeCommitsWithItsAuditEvent: for every mutating call of accounts and keys,
// the audit event's outbox row was written by the transaction that made the change (the
// same xmin as the changed row or the change's own event), so no crash between commit and
// audit can lose it.
func TestEveryChangeCommitsWithItsAuditEvent(t *testing.T) {
	s := startSuite(t)
	pool, err := pgxpool.New(context.Background(), s.dbURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	noteOutboxWrites(t, pool, "accounts", "keys")
	xminOf := func(query string, args ...any) string {
		var x string
		require.NoError(t, pool.QueryRow(context.Background(), query, args...).Scan(&x))
		return x
	}
	n := 0
	// check makes a call and requires that its one audit event was written by the same
	// transaction as changeXmin() (the changed row's), or as the change's own event.
	check := func(schema, method, path, token string, body any, changeXmin func(r testutil.Reply) string) testutil.Reply {
		t.Helper()
		n++
		rid := fmt.Sprintf("tx-%d-%s", n, testutil.Suffix())
		r := s.Call(method, path, token, body, "X-Request-Id", rid)
		require.Less(t, r.Status, 300, "%s %s: %s", method, path, r.Raw)
		rows := s.outboxByRequest(pool, schema)[rid]
		var audits []outboxRow
		want := ""
		for _, row := range rows {
			if row.audit != nil {
				audits = append(audits, row)
			} else {
				want = row.xmin
			}
		}
		require.Len(t, audits, 1, "%s %s: one audit event", method, path)
		require.Equal(t, "ok", audits[0].audit.GetResult())
		if changeXmin != nil {
			want = changeXmin(r)
		}
		require.NotEmpty(t, want, "%s %s: no change found", method, path)
		require.Equal(t, want, audits[0].xmin, "%s %s: the audit event was not written with the change", method, path)
		return r
	}
	email := "tx-" + testutil.Suffix() + "@example.com"
	password := "Correct-Horse-Battery-9"
	r := check("accounts", "POST", "/v1/accounts", "", map[string]any{"email": email, "password": password, "account_name": "tx"},
		func(r testutil.Reply) string {
			return xminOf(`SELECT xmin::text FROM accounts.accounts WHERE id = $1`, r.Str("account.id"))
		})
	account, token := r.Str("account.id"), r.Str("session.token")
	// A session is known by the SHA-256 of its token.
	sessionXmin := func(token string) string {
		return xminOf(`SELECT xmin::text FROM accounts.sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))`, token)
	}
	r = check("accounts", "POST", "/v1/sessions", "", map[string]any{"email": email, "password": password},
		func(r testutil.Reply) string { return sessionXmin(r.Str("session.token")) })
	login := r.Str("session.token")
	check("accounts", "POST", "/v1/account/verify-password", login, map[string]any{"password": password},
		func(testutil.Reply) string { return sessionXmin(login) })
	project := check("accounts", "POST", "/v1/projects", token, map[string]any{"name": "p"},
		func(r testutil.Reply) string {
			return xminOf(`SELECT xmin::text FROM accounts.projects WHERE id = $1`, r.Str("project.id"))
		}).Str("project.id")
	check("accounts", "PATCH", "/v1/projects/"+project, token, map[string]any{"name": "q"}, nil)
	key := check("keys", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd"}, nil).Str("key.id")
	check("keys", "PATCH", "/v1/keys/"+key, token, map[string]any{"name": "renamed"}, nil)
	successor := check("keys", "POST", "/v1/keys/"+key+":rotate", token, map[string]any{}, nil).Str("key.id")
	check("keys", "POST", "/v1/keys/"+successor+":revoke", token, map[string]any{}, nil)
	accountXmin := func(testutil.Reply) string {
		return xminOf(`SELECT xmin::text FROM accounts.accounts WHERE id = $1`, account)
	}
	check("accounts", "POST", "/v1/admin/accounts/"+account+":setPlan", s.operator, map[string]any{"plan": "pro"}, accountXmin)
	check("accounts", "POST", "/v1/admin/accounts/"+account+":suspend", s.operator, map[string]any{}, accountXmin)
	check("accounts", "POST", "/v1/admin/accounts/"+account+":reinstate", s.operator, map[string]any{}, accountXmin)
	check("accounts", "DELETE", "/v1/projects/"+project, token, nil, nil)
	check("accounts", "DELETE", "/v1/sessions/current", login, nil, func(testutil.Reply) string { return sessionXmin(login) })
}

// TestRefusedCallsFileUnderNoAccount: a call with no or a bad credential that names an
// account in its path (an operator route) adds nothing to that account's log.
func TestRefusedCallsFileUnderNoAccount(t *testing.T) {
	s := startSuite(t)
	_, victim := s.signUp("victim")
	rids := map[string]bool{}
	for i, token := range []string{"", "not-the-operator-token", "lks_" + strings.Repeat("x", 43)} {
		rid := fmt.Sprintf("anon-%d-%s", i, testutil.Suffix())
		rids[rid] = true
		r := s.Call("POST", "/v1/admin/accounts/"+victim+":suspend", token, map[string]any{}, "X-Request-Id", rid)
		require.Equal(t, 401, r.Status, r.Raw)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		trail := s.auditTrail()
		for rid := range rids {
			if len(trail[rid]) != 1 {
				return false
			}
			require.Equal(t, "", trail[rid][0].GetAccountId(), "an unauthenticated call filed under the account it named")
		}
		return true
	}, "the refused calls' events")
}

// TestPastedKeyIsRedacted: a secret sent where an id belongs is neither echoed in the
// error envelope nor kept in the audit log.
func TestPastedKeyIsRedacted(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("paste")
	_, secret := s.IngestKey(token, s.Project(token))
	body := secret[len("lk_ing_"):]
	rids := map[string]bool{}
	for i, path := range []string{"/v1/keys/" + secret, "/v1/keys/" + secret + ":rotate", "/v1/keyz/" + secret} {
		rid := fmt.Sprintf("paste-%d-%s", i, testutil.Suffix())
		method, payload := "GET", any(nil) // GET takes no body
		if strings.HasSuffix(path, ":rotate") {
			method, payload = "POST", map[string]any{}
		}
		r := s.Call(method, path, token, payload, "X-Request-Id", rid)
		require.GreaterOrEqual(t, r.Status, 400, r.Raw)
		require.NotContains(t, r.Raw, body, "the error echoes the secret")
		if r.Str("message") != "" && strings.Contains(r.Str("message"), "lk_ing_") {
			require.Contains(t, r.Str("message"), keyformat.Redacted)
		}
		rids[rid] = !strings.HasPrefix(path, "/v1/keyz/") // an unrouted path is not a call
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		trail := s.auditTrail()
		for rid, audited := range rids {
			if audited && len(trail[rid]) == 0 {
				return false
			}
			for _, ev := range trail[rid] {
				b, err := proto.Marshal(ev)
				require.NoError(t, err)
				require.NotContains(t, string(b), body, "the audit log keeps the secret")
			}
		}
		return true
	}, "the calls' audit events")
}
