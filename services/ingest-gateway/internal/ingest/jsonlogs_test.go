package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/pkg/natsx"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
)

func TestJSONLogsAccepted(t *testing.T) {
	e := newEnv(t, "")
	body := `{"service": "checkout", "logs": [
		{"level": "WARN", "message": "card declined", "timestamp": "2025-05-01T12:00:00.5Z",
		 "attributes": {"user.id": "u_1", "attempt": 3, "amount": 12.5, "retry": true}},
		{"message": "no level, no time"}
	]}`
	before := time.Now()
	r := e.post(t, PathJSONLogs, strings.NewReader(body), map[string]string{
		"Authorization": "Bearer good", "Content-Type": "application/json", requestid.Header: "jl-1",
	})
	after := time.Now()
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, contentTypeJSON, r.header.Get("Content-Type"))
	require.JSONEq(t, `{"accepted": 2}`, string(r.body))

	msgs := e.byRequestID(t, natsx.IngestStream(e.ns), "jl-1")
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, e.ns+".ingest.acc_1.prj_1.prd.logs", m.Subject)

	req := plogotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(m.Data))
	ld := req.Logs()
	require.Equal(t, 2, ld.LogRecordCount())
	rl := ld.ResourceLogs().At(0)
	svc, ok := rl.Resource().Attributes().Get("service.name")
	require.True(t, ok)
	require.Equal(t, "checkout", svc.Str())

	first := rl.ScopeLogs().At(0).LogRecords().At(0)
	require.Equal(t, "WARN", first.SeverityText())
	require.Equal(t, plog.SeverityNumberWarn, first.SeverityNumber())
	require.Equal(t, "card declined", first.Body().Str())
	require.Equal(t, time.Date(2025, 5, 1, 12, 0, 0, 5e8, time.UTC), first.Timestamp().AsTime())
	require.Equal(t, map[string]any{"user.id": "u_1", "attempt": int64(3), "amount": 12.5, "retry": true}, first.Attributes().AsRaw())
	v, _ := first.Attributes().Get("attempt")
	require.Equal(t, pcommon.ValueTypeInt, v.Type())

	second := rl.ScopeLogs().At(0).LogRecords().At(1)
	require.Equal(t, "info", second.SeverityText())
	require.Equal(t, plog.SeverityNumberInfo, second.SeverityNumber())
	ts := second.Timestamp().AsTime()
	require.False(t, ts.Before(before.Truncate(time.Microsecond)) || ts.After(after), "default timestamp %s is not now", ts)
	require.Equal(t, second.Timestamp(), second.ObservedTimestamp())
}

func TestJSONLogsGzipAndNoContentType(t *testing.T) {
	e := newEnv(t, "")
	body := []byte(`{"service":"s","logs":[{"level":"error","message":"m"}]}`)
	r := e.post(t, PathJSONLogs, bytes.NewReader(gzipBytes(t, body)), map[string]string{"x-api-key": "good", "Content-Encoding": "gzip"})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"accepted": 1}`, string(r.body))
	require.Len(t, e.messages(t, natsx.IngestStream(e.ns)), 1)
}

func TestJSONLogsBadInput(t *testing.T) {
	e := newEnv(t, "")
	many := func(n int) string {
		return `{"service":"s","logs":[` + strings.TrimSuffix(strings.Repeat(`{"message":"m"},`, n), ",") + `]}`
	}
	rec := func(fields string) string { return `{"service":"s","logs":[{` + fields + `}]}` }
	cases := []struct {
		name, body, message string
	}{
		{"not JSON", `service=s`, "not valid JSON"},
		{"truncated JSON", `{"service":"s","logs":[`, "not valid JSON"},
		{"an array", `[]`, "must be a JSON object"},
		{"a string", `"hello"`, "must be a JSON object"},
		{"null", `null`, "service is required"},
		{"two values", `{"service":"s","logs":[{"message":"m"}]} {}`, "more than one JSON value"},
		{"unknown top-level field", `{"service":"s","logs":[{"message":"m"}],"env":"prd"}`, `unknown field "env"`},
		{"unknown record field", rec(`"message":"m","severity":"info"`), `unknown field "severity"`},
		{"service of the wrong type", `{"service":5,"logs":[{"message":"m"}]}`, "service has the wrong type: got number, want a string"},
		{"logs of the wrong type", `{"service":"s","logs":{"message":"m"}}`, "logs has the wrong type: got object, want an array"},
		{"message of the wrong type", rec(`"message":42`), "logs.message has the wrong type: got number, want a string"},
		{"attributes of the wrong type", rec(`"message":"m","attributes":[1]`), "logs.attributes has the wrong type"},
		{"missing service", `{"logs":[{"message":"m"}]}`, "service is required"},
		{"blank service", `{"service":"  ","logs":[{"message":"m"}]}`, "service is required"},
		{"long service", `{"service":"` + strings.Repeat("s", 300) + `","logs":[{"message":"m"}]}`, "service is over 256 bytes"},
		{"empty logs without a service", `{"logs":[]}`, "service is required"},
		{"empty body", ``, "the request body is empty"},
		{"1001 logs", many(1001), "logs holds 1001 records; at most 1000"},
		{"missing message", rec(`"level":"info"`), "logs[0].message is required"},
		{"message over 64 KiB", rec(`"message":"` + strings.Repeat("m", 64<<10+1) + `"`), "logs[0].message is over 65536 bytes"},
		{"unknown level", rec(`"message":"m","level":"loud"`), `logs[0].level "loud" is not one of`},
		{"bad timestamp", rec(`"message":"m","timestamp":"yesterday"`), `logs[0].timestamp "yesterday" is not an RFC 3339 time`},
		{"timestamp without zone", rec(`"message":"m","timestamp":"2025-05-01T12:00:00"`), "RFC 3339"},
		{"timestamp before 1970", rec(`"message":"m","timestamp":"1969-12-31T23:59:59Z"`), "between 1970 and 2261"},
		{"nested attribute", rec(`"message":"m","attributes":{"a":{"b":1}}`), "logs[0].attributes.a must be a string, number or boolean"},
		{"array attribute", rec(`"message":"m","attributes":{"a":[1]}`), "attributes.a must be"},
		{"null attribute", rec(`"message":"m","attributes":{"a":null}`), "attributes.a must be"},
		{"empty attribute key", rec(`"message":"m","attributes":{"":1}`), "keys must be 1 to 256 bytes"},
		{"number out of range", rec(`"message":"m","attributes":{"n":1e400}`), "out of range"},
		{"too many attributes", rec(`"message":"m","attributes":{` + manyAttrs(129) + `}`), "at most 128"},
		{"second record bad", `{"service":"s","logs":[{"message":"m"},{"message":"m","level":7}]}`, "logs.level has the wrong type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, PathJSONLogs, strings.NewReader(tc.body), map[string]string{"Authorization": "Bearer good", "Content-Type": "application/json"})
			env := requireError(t, r, http.StatusBadRequest, apierr.InvalidArgument)
			require.Contains(t, env.Message, tc.message)
		})
	}

	t.Run("wrong content type", func(t *testing.T) {
		r := e.post(t, PathJSONLogs, strings.NewReader(`{"service":"s","logs":[{"message":"m"}]}`), map[string]string{"Authorization": "Bearer good", "Content-Type": "text/plain"})
		env := requireError(t, r, http.StatusBadRequest, apierr.InvalidArgument)
		require.Contains(t, env.Message, "application/json")
	})
	t.Run("zero-length body", func(t *testing.T) {
		r := e.post(t, PathJSONLogs, strings.NewReader(""), map[string]string{"Authorization": "Bearer good"})
		requireError(t, r, http.StatusBadRequest, apierr.InvalidArgument)
	})
	t.Run("no key", func(t *testing.T) {
		r := e.post(t, PathJSONLogs, strings.NewReader(`{"service":"s","logs":[{"message":"m"}]}`), nil)
		requireError(t, r, http.StatusUnauthorized, apierr.Unauthenticated)
	})
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))

	// Exactly at the limits is fine.
	r := e.post(t, PathJSONLogs, strings.NewReader(many(1000)), map[string]string{"Authorization": "Bearer good"})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.JSONEq(t, `{"accepted": 1000}`, string(r.body))
}

func manyAttrs(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}

// The same input always makes the same protobuf (attributes are sorted), so a retried
// request is byte-identical to the first.
func TestJSONLogsDeterministic(t *testing.T) {
	body := []byte(`{"service":"s","logs":[{"message":"m","timestamp":"2025-01-01T00:00:00Z","attributes":{"b":1,"a":"x","c":true,"d":2.5}}]}`)
	now := time.Unix(1_700_000_000, 0)
	var first []byte
	for range 20 {
		ld, aerr := decodeJSONLogs(body, now)
		require.Nil(t, aerr)
		b, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
		require.NoError(t, err)
		if first == nil {
			first = b
		}
		require.Equal(t, first, b)
	}
	ld, _ := decodeJSONLogs(body, now)
	var keys []string
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().Range(func(k string, _ pcommon.Value) bool {
		keys = append(keys, k)
		return true
	})
	require.Equal(t, []string{"a", "b", "c", "d"}, keys)
}
