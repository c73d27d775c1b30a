package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/pkg/natsx"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// One bad request never spoils another's data: bad requests sent among many good ones for
// the same subject, at once, so that they would share merged messages, are refused, and
// every stored message decodes with the official decoder and holds every good request.
func TestBadRequestsNeverSpoilAMergedMessage(t *testing.T) {
	// Requests carry their own X-Request-Id, to be told apart; merge them all the same.
	e := newEnv(t, "", func(e *env) { e.cfg.MergeClientRequestIDs = true })
	type request struct {
		id, contentType string
		body            []byte
		good            bool
	}
	var reqs []request
	for i, c := range exportCases(t, Logs) {
		if !c.storable && c.json != nil {
			reqs = append(reqs, request{id: fmt.Sprintf("bad-json-%02d", i), contentType: contentTypeJSON, body: c.json})
		}
		if !c.storable && c.proto != nil {
			reqs = append(reqs, request{id: fmt.Sprintf("bad-proto-%02d", i), contentType: contentTypeProto, body: c.proto})
		}
	}
	bad := len(reqs)
	for i := range 300 {
		req := plogotlp.NewExportRequestFromLogs(sampleLogs(fmt.Sprintf("good-%03d", i)))
		r := request{id: fmt.Sprintf("good-%03d", i), contentType: contentTypeProto, body: encodeProto(t, req), good: true}
		if i%2 == 1 {
			r.contentType, r.body = contentTypeJSON, encodeJSON(t, req)
		}
		reqs = append(reqs, r)
	}
	status := make([]int, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Go(func() {
			<-start
			hr := httptest.NewRequest(http.MethodPost, PathLogs, bytes.NewReader(r.body))
			hr.Header.Set("Authorization", "Bearer good")
			hr.Header.Set("Content-Type", r.contentType)
			hr.Header.Set(requestid.Header, r.id)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, hr)
			status[i] = rec.Code
		})
	}
	close(start)
	wg.Wait()

	msgs := e.messages(t, natsx.IngestStream(e.ns))
	stored, merged := map[string]int{}, false
	for _, m := range msgs {
		require.NoError(t, officialDecode(Logs, m.Data), "message of requests %v", m.Header.Values(HeaderRequestID))
		ids := m.Header.Values(HeaderRequestID)
		merged = merged || len(ids) > 1
		for _, id := range ids {
			stored[id]++
		}
	}
	require.True(t, merged, "requests were merged (%d requests in %d messages)", len(reqs), len(msgs))
	for i, r := range reqs {
		if r.good {
			require.Equal(t, http.StatusOK, status[i], r.id)
			require.Equal(t, 1, stored[r.id], r.id)
		} else {
			require.Equal(t, http.StatusBadRequest, status[i], r.id)
			require.Zero(t, stored[r.id], r.id)
		}
	}
	t.Logf("%d good and %d bad requests; %d messages", len(reqs)-bad, bad, len(msgs))
}

// storable is proto.Unmarshal's verdict with the recursion limit of 100, whatever the bytes.
func FuzzStorableAgreesWithDecoder(f *testing.F) {
	for _, sig := range []Signal{Traces, Metrics, Logs} {
		f.Add(encodeProto(f, sampleRequest(sig)), uint8(len(sig)))
		for _, c := range exportCases(f, sig) {
			if c.proto != nil {
				f.Add(c.proto, uint8(len(sig)))
			}
		}
	}
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	for _, b := range [][]byte{
		nil,
		tag(0, protowire.VarintType), // field number 0
		append(tag(protowire.MaxValidNumber, protowire.VarintType), 1),              // the largest field number
		{0xf8, 0xff, 0xff, 0xff, 0x0f, 0},                                           // one past it
		tag(1, protowire.EndGroupType),                                              // an end group with no start
		append(tag(9, protowire.StartGroupType), tag(9, protowire.EndGroupType)...), // an unknown group
		append(tag(1, protowire.VarintType), 1),                                     // a known field in another wire type
		append(tag(1, 6), 0),                                                        // a reserved wire type
		{0x0a, 0x05, 0x0a},                                                          // a length past the end
	} {
		f.Add(b, uint8(0))
	}
	signals := []Signal{Traces, Metrics, Logs}
	f.Fuzz(func(t *testing.T, data []byte, s uint8) {
		sig := signals[int(s)%len(signals)]
		got := storable(sig, data)
		want := (proto.UnmarshalOptions{RecursionLimit: maxMessageDepth}).Unmarshal(data, officialRequest(sig))
		if (got == nil) != (want == nil) {
			t.Fatalf("%s %x: storable says %v, proto.Unmarshal says %v", sig, data, got, want)
		}
	})
}

// Answered 200 ⇒ what was stored decodes with the official decoder, on every transport.
func FuzzStoredExportsDecode(f *testing.F) {
	e := fuzzEnv(f)
	conn := e.grpcConn(f)
	const (
		httpProto = iota
		httpProtoGzip
		httpJSON
		httpJSONGzip
		grpcProto
		jsonLogs
		transports
	)
	for _, sig := range []Signal{Traces, Metrics, Logs} {
		f.Add(encodeProto(f, sampleRequest(sig)), uint8(httpProto), uint8(len(sig)))
		f.Add(encodeJSON(f, sampleRequest(sig)), uint8(httpJSON), uint8(len(sig)))
		for _, c := range exportCases(f, sig) {
			if c.proto != nil {
				f.Add(c.proto, uint8(httpProto), uint8(len(sig)))
				f.Add(c.proto, uint8(grpcProto), uint8(len(sig)))
			}
			if c.json != nil {
				f.Add(c.json, uint8(httpJSON), uint8(len(sig)))
				f.Add(c.json, uint8(httpJSONGzip), uint8(len(sig)))
			}
		}
	}
	for _, s := range []string{
		`{"service":"s","logs":[{"message":"m"}]}`,
		`{"service":"s","logs":[{"message":"` + badUTF8 + `"}]}`,
		`{"service":"s","logs":[{"message":"m","attributes":{"` + badSurrogate + `":"\udc00"}}]}`,
	} {
		f.Add([]byte(s), uint8(jsonLogs), uint8(0))
	}
	signals := []Signal{Traces, Metrics, Logs}
	f.Fuzz(func(t *testing.T, body []byte, transport, s uint8) {
		sig := signals[int(s)%len(signals)]
		id := "fuzz-" + testutil.Suffix()
		ok := false
		switch transport % transports {
		case grpcProto:
			_, err := exportRaw(t, conn, sig, body, id)
			ok = err == nil
		case jsonLogs:
			sig = Logs
			rec := serve(t, e.h, PathJSONLogs, body, map[string]string{
				"Authorization": "Bearer good", "Content-Type": contentTypeJSON, requestid.Header: id,
			})
			ok = rec.Code == http.StatusOK
		default:
			ct, enc := contentTypeProto, ""
			switch transport % transports {
			case httpJSON, httpJSONGzip:
				ct = contentTypeJSON
			}
			switch transport % transports {
			case httpProtoGzip, httpJSONGzip:
				body, enc = gzipBytes(t, body), "gzip"
			}
			rec := serve(t, e.h, pathOf(sig), body, map[string]string{
				"Authorization": "Bearer good", "Content-Type": ct, "Content-Encoding": enc, requestid.Header: id,
			})
			ok = rec.Code == http.StatusOK
		}
		// Requests are sent one at a time, so a stored one is its subject's last message.
		m, err := e.lastMessage(t, sig)
		if err != nil || !slices.Contains(m.Header.Values(HeaderRequestID), id) {
			return // nothing stored for this request
		}
		if !ok {
			t.Fatalf("refused but stored: %q", body)
		}
		if err := officialDecode(sig, m.Data); err != nil {
			t.Fatalf("answered 200, but what was stored does not decode: %v\nbody %q", err, body)
		}
	})
}

// lastMessage is the last message stored on sig's subject for goodGrant.
func (e *env) lastMessage(t testing.TB, sig Signal) (*jetstream.RawStreamMsg, error) {
	t.Helper()
	subject, err := Subject(e.ns, goodGrant, sig)
	require.NoError(t, err)
	s, err := e.js.Stream(t.Context(), natsx.IngestStream(e.ns))
	require.NoError(t, err)
	return s.GetLastMsgForSubject(t.Context(), subject)
}
