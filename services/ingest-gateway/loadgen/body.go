package loadgen

import (
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// bytesPerSpan sets how many spans a body of a given size holds, so that a larger body
// looks like a larger batch rather than one span with a huge attribute.
const bytesPerSpan = 512

// TracesBody returns a valid OTLP ExportTraceServiceRequest, in protobuf, of about n bytes:
// one resource and scope with one span per 512 bytes (at least one), each with a few
// HTTP attributes and an lk.padding attribute sized so that the whole body comes to n.
// A body cannot be smaller than its fixed parts (about 300 bytes); below that it is as
// small as it gets. The same n always gives the same bytes.
func TracesBody(n int) []byte {
	spans := max(1, n/bytesPerSpan)
	body := tracesBody(spans, 0)
	// Length prefixes are varints, so adding padding can grow them by a byte or two:
	// converge on n in a few steps instead of computing the overhead exactly.
	pad := 0
	for range 8 {
		diff := n - len(body)
		if diff == 0 || pad+diff < 0 {
			break
		}
		pad += diff
		body = tracesBody(spans, pad)
	}
	return body
}

// tracesBody builds the request with pad bytes of padding spread over the spans.
func tracesBody(spans, pad int) []byte {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	res := rs.Resource().Attributes()
	res.PutStr("service.name", "loadgen")
	res.PutStr("service.version", "1.0.0")
	res.PutStr("deployment.environment", "bench")

	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("github.com/latchkey/latchkey/loadgen")

	// Fixed ids and times: the same size gives the same body, run after run.
	traceID := pcommon.TraceID{0x4c, 0x4b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range spans {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(traceID)
		sp.SetSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i + 1)})
		if i > 0 {
			sp.SetParentSpanID(pcommon.SpanID{0, 0, 0, 0, 0, 0, 0, 1})
		}
		sp.SetName(fmt.Sprintf("GET /api/items/%d", i))
		sp.SetKind(ptrace.SpanKindServer)
		t := start.Add(time.Duration(i) * time.Millisecond)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t.Add(3 * time.Millisecond)))
		sp.Status().SetCode(ptrace.StatusCodeOk)

		attrs := sp.Attributes()
		attrs.PutStr("http.request.method", "GET")
		attrs.PutStr("url.path", fmt.Sprintf("/api/items/%d", i))
		attrs.PutInt("http.response.status_code", 200)
		share := pad / spans
		if i < pad%spans {
			share++
		}
		if share > 0 {
			attrs.PutStr("lk.padding", strings.Repeat("x", share))
		}
	}

	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		// Marshalling a request built above cannot fail; if it does, pdata changed.
		panic(fmt.Sprintf("loadgen: marshal traces: %v", err))
	}
	return body
}
