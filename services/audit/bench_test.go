package audit_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// storedTotal is how many events every chain holds together, cheaply (no count(*)).
func (e *env) storedTotal() int64 {
	e.t.Helper()
	var n int64
	require.NoError(e.t, e.super.QueryRow(context.Background(),
		`SELECT coalesce(sum(sequence), 0) FROM audit.chain_heads`).Scan(&n))
	return n
}

// BenchmarkStoreEvents measures the consumer path: b.N events over 100 accounts handed
// to JetStream, until all are stored and chained. "live": the service consumes while they
// are published; "backlog": they wait in the stream while the service is down (an outage),
// then a new one drains them.
func BenchmarkStoreEvents(b *testing.B) {
	makeEvents := func(n int) []*auditv1.AuditEvent {
		accounts := make([]string, 100)
		for i := range accounts {
			accounts[i] = fmt.Sprintf("acc_bench_%03d", i)
		}
		evs := make([]*auditv1.AuditEvent, n)
		now := time.Now()
		for i := range evs {
			evs[i] = event(accounts[i%len(accounts)], now)
		}
		return evs
	}
	wait := func(e *env, n int64) {
		testutil.Eventually(b, 10*time.Minute, func() bool { return e.storedTotal() >= n }, "events to be stored")
	}
	b.Run("live", func(b *testing.B) {
		e := newEnv(b)
		evs := makeEvents(b.N)
		b.ResetTimer()
		start := time.Now()
		e.publish(evs...)
		wait(e, int64(b.N))
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
	b.Run("backlog", func(b *testing.B) {
		e := newEnv(b)
		e.audit.stop()
		e.publish(makeEvents(b.N)...)
		b.ResetTimer()
		start := time.Now()
		e.startAudit()
		wait(e, int64(b.N))
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
}

// BenchmarkVerifyChain measures GET /v1/audit/verify on one account's chain of 100,000
// events stored through the consumer, reported as events checked per second.
func BenchmarkVerifyChain(b *testing.B) {
	e := newEnv(b)
	u := e.accounts.api.SignUp("bench")
	const n = 100_000
	evs := make([]*auditv1.AuditEvent, n)
	for i := range evs {
		evs[i] = event(u.AccountID, time.Now())
	}
	e.publish(evs...)
	testutil.Eventually(b, 10*time.Minute, func() bool { return e.storedTotal() >= n }, "events to be stored")
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		ok, checked, bad := e.verify(u.Token)
		require.True(b, ok, bad)
		require.Equal(b, n, checked)
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "events/s")
}

// benchRows is the size of the table BenchmarkListEvents reads.
const benchRows = 1_000_000

// fillMillion inserts benchRows valid events straight in SQL: 60% in the caller's account,
// the rest over 997 others; ten to every 25 ms over 30 days; 50 keys, 4 resource types,
// 10,007 resources, 20 actions, 5% refused. Chains are linked (sequence, prev_hash) but the
// hashes are stand-ins: the listing does not read them.
func (e *env) fillMillion(accountID string) {
	e.t.Helper()
	ctx := context.Background()
	_, err := e.super.Exec(ctx, `
INSERT INTO audit.events (id, account_id, sequence, occurred_at, actor_type, actor_id, key_id, action,
	resource_type, resource_id, result, request_id, client_ip, user_agent, details, prev_hash, hash)
SELECT id, acc, seq, at, 'account_key', 'key_' || (g % 50), 'key_' || (g % 50), 'action.' || (g % 20),
	(ARRAY['key', 'project', 'account', 'session'])[1 + g % 4], 'res_' || (g % 10007),
	CASE WHEN g % 20 = 0 THEN 'not_found' ELSE 'ok' END, 'req_' || g, '192.0.2.' || (g % 250),
	'bench/1', jsonb_build_object('n', g::text),
	coalesce(lag(hash) OVER (PARTITION BY acc ORDER BY g), repeat('0', 64)), hash
FROM (
	SELECT g, 'aud_bench_' || lpad(g::text, 8, '0') AS id,
		CASE WHEN g % 5 < 3 THEN $1 ELSE 'acc_other_' || (g % 997) END AS acc,
		row_number() OVER (PARTITION BY CASE WHEN g % 5 < 3 THEN $1 ELSE 'acc_other_' || (g % 997) END ORDER BY g) AS seq,
		now() - interval '30 days' + (g / 10) * interval '25 milliseconds' AS at,
		md5(g::text) || md5((-g)::text) AS hash
	FROM generate_series(1, $2::int) AS g
) s`, accountID, benchRows)
	require.NoError(e.t, err)
	_, err = e.super.Exec(ctx, `
INSERT INTO audit.chain_heads (account_id, sequence, hash)
SELECT DISTINCT ON (account_id) account_id, sequence, hash FROM audit.events ORDER BY account_id, sequence DESC`)
	require.NoError(e.t, err)
	_, err = e.super.Exec(ctx, `ANALYZE audit.events`)
	require.NoError(e.t, err)
}

// requireIndexPlan asserts the listing query's plan reads an index in order: no sort, no
// sequential scan.
func (e *env) requireIndexPlan(accountID, where string, args ...any) string {
	e.t.Helper()
	q := `EXPLAIN SELECT * FROM audit.events WHERE account_id = $1` + where +
		` ORDER BY occurred_at DESC, id DESC LIMIT 101`
	rows, err := e.super.Query(context.Background(), q, append([]any{accountID}, args...)...)
	require.NoError(e.t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		require.NoError(e.t, rows.Scan(&line))
		plan = append(plan, line)
	}
	text := strings.Join(plan, "\n")
	require.Contains(e.t, text, "Index Scan Backward", text)
	require.NotContains(e.t, text, "Sort", text)
	require.NotContains(e.t, text, "Seq Scan", text)
	return text
}

// BenchmarkListEvents reports the p99 latency of GET /v1/audit/events (limit 100, over
// REST, authenticated by the accounts service) with a million events in the table, for
// first pages and for walks deep into the listing by cursor, unfiltered and filtered.
func BenchmarkListEvents(b *testing.B) {
	e := newEnv(b)
	u := e.accounts.api.SignUp("bench")
	start := time.Now()
	e.fillMillion(u.AccountID)
	b.Logf("%d events inserted, indexed and analysed in %s", benchRows, time.Since(start).Round(time.Millisecond))
	someTime := time.Now().Add(-15 * 24 * time.Hour)
	for _, c := range []struct {
		where string
		args  []any
	}{
		{"", nil},
		{" AND (occurred_at, id) < ($2, $3)", []any{someTime, "aud_bench_00500000"}},
		{" AND key_id = $2", []any{"key_7"}},
		{" AND resource_type = $2", []any{"project"}},
		{" AND resource_id = $2", []any{"res_42"}},
		{" AND action = $2 AND (occurred_at, id) < ($3, $4)", []any{"action.3", someTime, "aud_bench_00500000"}},
		{" AND result = $2", []any{"not_found"}},
	} {
		plan := e.requireIndexPlan(u.AccountID, c.where, c.args...)
		b.Logf("plan for%s:\n%s", c.where, plan)
	}

	for _, c := range []struct{ name, query string }{
		{"unfiltered", ""},
		{"key_id", "&key_id=key_7"},
		{"resource_id", "&resource_id=res_42"},
		{"action+result", "&action=action.0&result=not_found"},
		{"key_id+resource_type+action", "&key_id=key_1&resource_type=project&action=action.1"},
		// No event matches: the worst case, every event of the key is read.
		{"no-match", "&key_id=key_3&resource_type=account&action=action.3"},
	} {
		b.Run(c.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			cursor := ""
			pages := 0
			b.ResetTimer()
			for range b.N {
				q := "/v1/audit/events?limit=100" + c.query
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				t0 := time.Now()
				body := e.get(q, u.Token).OK(b)
				lat = append(lat, time.Since(t0))
				cursor = testutil.Str(body, "next_cursor")
				pages++
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		})
	}
}
