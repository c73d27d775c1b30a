package ingest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// fuzzEnv is a handler on real JetStream whose streams keep data a minute, so even a fuzz
// worker killed before its cleanup leaves little behind.
func fuzzEnv(f *testing.F) *env {
	e := newEnv(f, "", withMaxBody(256<<10), withLogger(zap.NewNop()))
	require.NoError(f, ensureStreams(f.Context(), e.js, e.ns, time.Minute, time.Minute))
	return e
}

// serve runs one request through the handler and checks the invariants every answer keeps:
// no panic, no 5xx but 503, an X-Request-Id, and a JSON envelope on every error.
func serve(t *testing.T, h http.Handler, path string, body []byte, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
	}
	if rec.Header().Get(requestid.Header) == "" {
		t.Fatal("no X-Request-Id")
	}
	if rec.Code != http.StatusOK {
		var env envelope
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error == "" || env.Message == "" || env.RequestID == "" {
			t.Fatalf("status %d without an error envelope: %q", rec.Code, rec.Body.Bytes())
		}
	}
	return rec
}

func FuzzHTTPDecode(f *testing.F) {
	e := fuzzEnv(f)
	for _, sig := range []Signal{Traces, Metrics, Logs} {
		p := encodeProto(f, sampleRequest(sig))
		j := encodeJSON(f, sampleRequest(sig))
		f.Add(p, contentTypeProto, "", false, uint8(len(sig)))
		f.Add(p, contentTypeProto, "gzip", true, uint8(len(sig)))
		f.Add(j, contentTypeJSON, "", false, uint8(len(sig)))
		f.Add(j, "application/json; charset=utf-8", "gzip", true, uint8(len(sig)))
		f.Add(p[:len(p)/2], contentTypeProto, "", false, uint8(len(sig)))
		f.Add(j[:len(j)/2], contentTypeJSON, "", false, uint8(len(sig)))
	}
	f.Add([]byte{}, contentTypeProto, "", false, uint8(0))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}`), contentTypeJSON, "", false, uint8(0))
	f.Add([]byte{0x1f, 0x8b, 0x08, 0x00}, contentTypeProto, "gzip", false, uint8(0))
	f.Add([]byte("x"), "text/plain", "br", false, uint8(1))

	paths := []string{PathTraces, PathMetrics, PathLogs}
	f.Fuzz(func(t *testing.T, body []byte, contentType, encoding string, compress bool, route uint8) {
		if compress {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(body)
			_ = zw.Close()
			body = buf.Bytes()
		}
		serve(t, e.h, paths[int(route)%len(paths)], body, map[string]string{
			"Authorization": "Bearer good", "Content-Type": contentType, "Content-Encoding": encoding,
			requestid.Header: "fuzz-" + testutil.Suffix(),
		})
	})
}

func FuzzIngestLogs(f *testing.F) {
	e := fuzzEnv(f)
	for _, s := range []string{
		`{"service":"s","logs":[{"message":"m"}]}`,
		`{"service":"s","logs":[{"level":"warn","message":"m","timestamp":"2025-05-01T12:00:00Z","attributes":{"a":1,"b":"x","c":true,"d":1.5}}]}`,
		`{"service":"s","logs":[{"message":"m","attributes":{"a":{"b":1}}}]}`,
		`{"service":"s","logs":[{"message":"m","timestamp":"0000-01-01T00:00:00Z"}]}`,
		`{"service":"s","logs":[{"message":"m","attributes":{"n":1e999}}]}`,
		`{"service":5}`, `[]`, `null`, `{`, ``, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := serve(t, e.h, PathJSONLogs, body, map[string]string{
			"Authorization": "Bearer good", "Content-Type": "application/json", requestid.Header: "fuzz-" + testutil.Suffix(),
		})
		if rec.Code == http.StatusOK {
			// Whatever was accepted converts to OTLP the same way every time.
			ld, aerr := decodeJSONLogs(body, time.Now())
			if aerr != nil || ld.LogRecordCount() == 0 {
				t.Fatalf("accepted but does not decode: %v", aerr)
			}
		}
	})
}
