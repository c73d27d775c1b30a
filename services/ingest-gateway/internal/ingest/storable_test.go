package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/pkg/natsx"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// officialRequest is an empty official Export*ServiceRequest of sig.
func officialRequest(sig Signal) proto.Message {
	switch sig {
	case Traces:
		return &coltrace.ExportTraceServiceRequest{}
	case Metrics:
		return &colmetrics.ExportMetricsServiceRequest{}
	default:
		return &collogs.ExportLogsServiceRequest{}
	}
}

// officialDecode is the test oracle of what may be stored: data must decode as sig's
// Export*ServiceRequest with the official generated protos and proto.Unmarshal's default
// options (UTF-8 validation included), within the recursion limit of 100 of the C++, Java
// and Python decoders, and with pdata, which consumers of the stream use.
func officialDecode(sig Signal, data []byte) error {
	if err := proto.Unmarshal(data, officialRequest(sig)); err != nil {
		return fmt.Errorf("proto.Unmarshal: %w", err)
	}
	if err := (proto.UnmarshalOptions{RecursionLimit: 100}).Unmarshal(data, officialRequest(sig)); err != nil {
		return fmt.Errorf("proto.Unmarshal with the other languages' recursion limit of 100: %w", err)
	}
	req, _ := newExportRequest(sig)
	if err := req.UnmarshalProto(data); err != nil {
		return fmt.Errorf("pdata: %w", err)
	}
	return nil
}

// exportCase is one export request in protobuf and in OTLP/JSON (nil: not sent so).
type exportCase struct {
	name     string
	sig      Signal
	proto    []byte
	json     []byte
	storable bool
}

// placeholder marks where a case puts badUTF8, of the same length so protobuf lengths hold.
const (
	placeholder = "@BADUTF@"
	badUTF8     = "\xffBAD\xc3(xx"
	// badSurrogate is U+D800 encoded as if it were a character (CESU-8), also not UTF-8.
	badSurrogate = "\xed\xa0\x80BADUT"
)

// otlpCase encodes req both ways, with every placeholder replaced by with in protobuf and
// by withJSON in JSON.
func otlpCase(t testing.TB, name string, sig Signal, req testRequest, with, withJSON string, storable bool) exportCase {
	t.Helper()
	p := bytes.ReplaceAll(encodeProto(t, req), []byte(placeholder), []byte(with))
	j := bytes.ReplaceAll(encodeJSON(t, req), []byte(placeholder), []byte(withJSON))
	return exportCase{name: name, sig: sig, proto: p, json: j, storable: storable}
}

// item builds a request of sig with one item whose value slot (a span's attribute, a data
// point's attribute, a log record's body) fill sets; depth is how deep that slot sits.
func item(sig Signal, fill func(pcommon.Value)) (req testRequest, depth int) {
	switch sig {
	case Traces:
		td := sampleTraces(1)
		fill(td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutEmpty("slot"))
		// request, ResourceSpans, ScopeSpans, Span, KeyValue, AnyValue
		return ptraceotlp.NewExportRequestFromTraces(td), 6
	case Metrics:
		md := sampleMetrics()
		fill(md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0).Attributes().PutEmpty("slot"))
		// request, ResourceMetrics, ScopeMetrics, Metric, Gauge, NumberDataPoint, KeyValue, AnyValue
		return pmetricotlp.NewExportRequestFromMetrics(md), 8
	default:
		ld := sampleLogs("")
		fill(ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body())
		// request, ResourceLogs, ScopeLogs, LogRecord, AnyValue
		return plogotlp.NewExportRequestFromLogs(ld), 5
	}
}

func nestKVList(levels int) func(pcommon.Value) {
	return func(v pcommon.Value) {
		for range levels {
			v = v.SetEmptyMap().PutEmpty("k")
		}
		v.SetStr("leaf")
	}
}

func nestArray(levels int) func(pcommon.Value) {
	return func(v pcommon.Value) {
		for range levels {
			v = v.SetEmptySlice().AppendEmpty()
		}
		v.SetStr("leaf")
	}
}

// stringFields puts s into each string field of a sig request, one request per field.
func stringFields(sig Signal, s string) map[string]testRequest {
	out := map[string]testRequest{}
	switch sig {
	case Traces:
		set := func(name string, f func(td ptrace.Traces, sp ptrace.Span)) {
			td := sampleTraces(1)
			f(td, td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0))
			out[name] = ptraceotlp.NewExportRequestFromTraces(td)
		}
		set("span name", func(_ ptrace.Traces, sp ptrace.Span) { sp.SetName(s) })
		set("attribute key", func(_ ptrace.Traces, sp ptrace.Span) { sp.Attributes().PutStr(s, "v") })
		set("attribute value", func(_ ptrace.Traces, sp ptrace.Span) { sp.Attributes().PutStr("k", s) })
		set("value in an array", func(_ ptrace.Traces, sp ptrace.Span) {
			sp.Attributes().PutEmptySlice("k").AppendEmpty().SetStr(s)
		})
		set("resource attribute", func(td ptrace.Traces, _ ptrace.Span) {
			td.ResourceSpans().At(0).Resource().Attributes().PutStr("host.name", s)
		})
		set("scope name", func(td ptrace.Traces, _ ptrace.Span) { td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().SetName(s) })
		set("schema url", func(td ptrace.Traces, _ ptrace.Span) { td.ResourceSpans().At(0).SetSchemaUrl(s) })
		set("trace state", func(_ ptrace.Traces, sp ptrace.Span) { sp.TraceState().FromRaw(s) })
		set("event name", func(_ ptrace.Traces, sp ptrace.Span) { sp.Events().AppendEmpty().SetName(s) })
		set("link attribute", func(_ ptrace.Traces, sp ptrace.Span) {
			l := sp.Links().AppendEmpty()
			l.SetTraceID(testTraceID)
			l.Attributes().PutStr("k", s)
		})
		set("status message", func(_ ptrace.Traces, sp ptrace.Span) { sp.Status().SetMessage(s) })
	case Metrics:
		set := func(name string, f func(md pmetric.Metrics, m pmetric.Metric)) {
			md := sampleMetrics()
			f(md, md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0))
			out[name] = pmetricotlp.NewExportRequestFromMetrics(md)
		}
		set("metric name", func(_ pmetric.Metrics, m pmetric.Metric) { m.SetName(s) })
		set("description", func(_ pmetric.Metrics, m pmetric.Metric) { m.SetDescription(s) })
		set("unit", func(_ pmetric.Metrics, m pmetric.Metric) { m.SetUnit(s) })
		set("data point attribute", func(_ pmetric.Metrics, m pmetric.Metric) { m.Gauge().DataPoints().At(0).Attributes().PutStr("k", s) })
		set("exemplar attribute", func(_ pmetric.Metrics, m pmetric.Metric) {
			m.Gauge().DataPoints().At(0).Exemplars().AppendEmpty().FilteredAttributes().PutStr("k", s)
		})
		set("scope version", func(md pmetric.Metrics, _ pmetric.Metric) {
			md.ResourceMetrics().At(0).ScopeMetrics().At(0).Scope().SetVersion(s)
		})
	default:
		set := func(name string, f func(ld plog.Logs, lr plog.LogRecord)) {
			ld := sampleLogs("hello")
			f(ld, ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0))
			out[name] = plogotlp.NewExportRequestFromLogs(ld)
		}
		set("body", func(_ plog.Logs, lr plog.LogRecord) { lr.Body().SetStr(s) })
		set("severity text", func(_ plog.Logs, lr plog.LogRecord) { lr.SetSeverityText(s) })
		set("attribute key", func(_ plog.Logs, lr plog.LogRecord) { lr.Attributes().PutStr(s, "v") })
		set("value in a kvlist", func(_ plog.Logs, lr plog.LogRecord) { lr.Body().SetEmptyMap().PutStr("k", s) })
		set("event name", func(_ plog.Logs, lr plog.LogRecord) { lr.SetEventName(s) })
		set("resource attribute key", func(ld plog.Logs, _ plog.LogRecord) {
			ld.ResourceLogs().At(0).Resource().Attributes().PutStr(s, "v")
		})
	}
	return out
}

// exportCases is every kind of export request the storable rule decides, for sig.
func exportCases(t testing.TB, sig Signal) []exportCase {
	t.Helper()
	var cases []exportCase
	for field, req := range stringFields(sig, placeholder) {
		cases = append(cases,
			otlpCase(t, "invalid UTF-8 in the "+field, sig, req, badUTF8, badUTF8, false),
			otlpCase(t, "a UTF-8-encoded surrogate in the "+field, sig, req, badSurrogate, badSurrogate, false),
			otlpCase(t, "NUL and U+FFFD in the "+field, sig, req, "\x00\uFFFDokay", `\u0000\ufffdokay`, true),
		)
		// OTLP/JSON's \u escapes of lone surrogates decode to U+FFFD, as in encoding/json.
		c := otlpCase(t, `lone surrogate escapes in the `+field, sig, req, placeholder, `\udc00x\ud800`, true)
		c.proto = nil
		cases = append(cases, c)
	}
	_, base := item(sig, func(pcommon.Value) {})
	kv, arr := (maxMessageDepth-base)/3, (maxMessageDepth-base)/2
	for _, d := range []struct {
		name     string
		fill     func(pcommon.Value)
		storable bool
	}{
		{"kvlistValue nested 60 deep", nestKVList(60), false},
		{fmt.Sprintf("kvlistValue nested %d deep, the most that fits", kv), nestKVList(kv), true},
		{fmt.Sprintf("kvlistValue nested %d deep, one too many", kv+1), nestKVList(kv + 1), false},
		{fmt.Sprintf("arrayValue nested %d deep, the most that fits", arr), nestArray(arr), true},
		{fmt.Sprintf("arrayValue nested %d deep, one too many", arr+1), nestArray(arr + 1), false},
		{"arrayValue nested 200 deep", nestArray(200), false},
	} {
		req, _ := item(sig, d.fill)
		cases = append(cases, otlpCase(t, d.name, sig, req, placeholder, placeholder, d.storable))
	}
	for _, c := range cases {
		if c.proto != nil {
			// The case is what it says it is, by the oracle.
			require.Equal(t, c.storable, officialDecode(sig, c.proto) == nil, "%s/%s: %v", sig, c.name, officialDecode(sig, c.proto))
		}
	}
	return cases
}

// rawCodec sends and receives gRPC messages as the bytes given, so a test can send what
// no well-behaved client would. Named "proto", it reaches the server's protobuf codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// grpcMethod is the full name of sig's Export method.
func grpcMethod(sig Signal) string {
	sd := collogs.LogsService_ServiceDesc
	switch sig {
	case Traces:
		sd = coltrace.TraceService_ServiceDesc
	case Metrics:
		sd = colmetrics.MetricsService_ServiceDesc
	}
	return "/" + sd.ServiceName + "/Export"
}

// exportRaw calls sig's gRPC Export with body as the request's bytes and returns the
// response's bytes.
func exportRaw(t testing.TB, conn *grpc.ClientConn, sig Signal, body []byte, id string) ([]byte, error) {
	var out []byte
	ctx := grpcCtx(t, "authorization", "Bearer good", requestid.MetadataKey, id)
	err := conn.Invoke(ctx, grpcMethod(sig), &body, &out, grpc.ForceCodecV2(rawCodec{}))
	return out, err
}

// otlpTransport sends a case's request one way and says whether it applies to the case.
type otlpTransport struct {
	name string
	send func(t *testing.T, e *env, c exportCase, id string) (status int, ok bool)
}

// otlpTransports is every way an OTLP export reaches the gateway; each returns the HTTP
// status, or for gRPC 200 on success and 400 on INVALID_ARGUMENT (other codes fail).
func otlpTransports(conn *grpc.ClientConn) []otlpTransport {
	overHTTP := func(isJSON, gzipped bool) func(t *testing.T, e *env, c exportCase, id string) (int, bool) {
		return func(t *testing.T, e *env, c exportCase, id string) (int, bool) {
			body, ct := c.proto, contentTypeProto
			if isJSON {
				body, ct = c.json, contentTypeJSON
			}
			if body == nil {
				return 0, false
			}
			enc := ""
			if gzipped {
				body, enc = gzipBytes(t, body), "gzip"
			}
			r := e.post(t, pathOf(c.sig), bytes.NewReader(body), map[string]string{
				"Authorization": "Bearer good", "Content-Type": ct, "Content-Encoding": enc, requestid.Header: id,
			})
			if r.status != http.StatusOK {
				requireError(t, r, r.status, apierr.InvalidArgument)
			}
			return r.status, true
		}
	}
	return []otlpTransport{
		{"http-protobuf", overHTTP(false, false)},
		{"http-protobuf-gzip", overHTTP(false, true)},
		{"http-json", overHTTP(true, false)},
		{"http-json-gzip", overHTTP(true, true)},
		{"grpc", func(t *testing.T, _ *env, c exportCase, id string) (int, bool) {
			if c.proto == nil {
				return 0, false
			}
			_, err := exportRaw(t, conn, c.sig, c.proto, id)
			if err == nil {
				return http.StatusOK, true
			}
			requireStatus(t, err, codes.InvalidArgument, apierr.InvalidArgument)
			return http.StatusBadRequest, true
		}},
	}
}

// storedByRequestID indexes every message of the ingest streams by the request ids it holds.
func (e *env) storedByRequestID(t *testing.T) map[string][]*jetstream.RawStreamMsg {
	t.Helper()
	out := map[string][]*jetstream.RawStreamMsg{}
	for _, stream := range []string{natsx.IngestStream(e.ns), natsx.AnonIngestStream(e.ns)} {
		for _, m := range e.messages(t, stream) {
			for _, id := range m.Header.Values(HeaderRequestID) {
				out[id] = append(out[id], m)
			}
		}
	}
	return out
}

// Fault 4 of issue 8: whatever the transport, an export request is stored only if it
// decodes under the OTLP protos' own rules (UTF-8 strings, at most 100 nested messages),
// and is refused with 400 / INVALID_ARGUMENT otherwise.
func TestUnstorableExportsAreRefusedOnEveryTransport(t *testing.T) {
	e := newEnv(t, "")
	transports := otlpTransports(e.grpcConn(t))
	want := map[string]bool{} // request id: storable
	sigOf, nameOf := map[string]Signal{}, map[string]string{}
	for _, sig := range []Signal{Traces, Metrics, Logs} {
		for _, c := range exportCases(t, sig) {
			for _, tr := range transports {
				name := fmt.Sprintf("%s/%s/%s", sig, tr.name, c.name)
				id := fmt.Sprintf("case-%04d", len(nameOf))
				nameOf[id] = name
				t.Run(name, func(t *testing.T) {
					status, ok := tr.send(t, e, c, id)
					if !ok {
						return
					}
					want[id], sigOf[id] = c.storable, sig
					if c.storable {
						require.Equal(t, http.StatusOK, status)
					} else {
						require.Equal(t, http.StatusBadRequest, status)
					}
				})
			}
		}
	}
	stored := e.storedByRequestID(t)
	for id, storable := range want {
		if !storable {
			require.Empty(t, stored[id], "%s was refused, so nothing of it is stored", nameOf[id])
			continue
		}
		require.Len(t, stored[id], 1, nameOf[id])
		require.NoError(t, officialDecode(sigOf[id], stored[id][0].Data), nameOf[id])
	}
	for _, msgs := range stored {
		for _, m := range msgs {
			require.NoError(t, officialDecode(Signal(m.Subject[strings.LastIndex(m.Subject, ".")+1:]), m.Data))
		}
	}
}

// The same rule for POST /ingest/logs: its JSON must be UTF-8, as OTLP/JSON's must.
func TestJSONLogsRefuseInvalidUTF8(t *testing.T) {
	e := newEnv(t, "")
	for name, body := range map[string]string{
		"service":         `{"service":"` + badUTF8 + `","logs":[{"message":"m"}]}`,
		"message":         `{"service":"s","logs":[{"message":"` + badUTF8 + `"}]}`,
		"level":           `{"service":"s","logs":[{"level":"` + badSurrogate + `","message":"m"}]}`,
		"attribute key":   `{"service":"s","logs":[{"message":"m","attributes":{"` + badUTF8 + `":1}}]}`,
		"attribute value": `{"service":"s","logs":[{"message":"m","attributes":{"k":"` + badSurrogate + `"}}]}`,
		"outside strings": "{\"service\":\"s\",\"logs\":[{\"message\":\"m\"}]}\xff",
	} {
		t.Run(name, func(t *testing.T) {
			r := e.post(t, PathJSONLogs, strings.NewReader(body), map[string]string{
				"Authorization": "Bearer good", "Content-Type": contentTypeJSON,
			})
			env := requireError(t, r, http.StatusBadRequest, apierr.InvalidArgument)
			require.Contains(t, env.Message, "UTF-8")
		})
	}
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))

	// Escapes of lone surrogates are JSON; they decode to U+FFFD, as in OTLP/JSON.
	r := e.post(t, PathJSONLogs, strings.NewReader(`{"service":"s\udc00","logs":[{"message":"a\ud800b","attributes":{"\udfff":"\udbff"}}]}`),
		map[string]string{"Authorization": "Bearer good", "Content-Type": contentTypeJSON, requestid.Header: "surrogates"})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	msgs := e.byRequestID(t, natsx.IngestStream(e.ns), "surrogates")
	require.Len(t, msgs, 1)
	require.NoError(t, officialDecode(Logs, msgs[0].Data))
	req := plogotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(msgs[0].Data))
	require.Equal(t, "a\uFFFDb", req.Logs().ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().Str())
}
