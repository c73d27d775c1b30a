package ingest

import (
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/proto"
)

// traces1KiB is an OTLP traces request of about 1 KiB in protobuf.
func traces1KiB(b *testing.B) []byte {
	spans := 1
	for {
		body := encodeProto(b, ptraceotlp.NewExportRequestFromTraces(sampleTraces(spans)))
		if len(body) >= 1024 {
			return body
		}
		spans++
	}
}

func BenchmarkDecodeTraces(b *testing.B) {
	body := traces1KiB(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, n, err := decodeOTLP(Traces, formatProto, body); err != nil || n == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeTracesJSON(b *testing.B) {
	req := ptraceotlp.NewExportRequest()
	if err := req.UnmarshalProto(traces1KiB(b)); err != nil {
		b.Fatal(err)
	}
	body := encodeJSON(b, req)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, n, err := decodeOTLP(Traces, formatJSON, body); err != nil || n == 0 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSONLogs(b *testing.B) {
	body := []byte(`{"service":"checkout","logs":[` + strings.TrimSuffix(strings.Repeat(
		`{"level":"info","message":"order placed","timestamp":"2025-05-01T12:00:00Z","attributes":{"order.id":"o_1","amount":12.5}},`, 8), ",") + `]}`)
	now := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, aerr := decodeJSONLogs(body, now); aerr != nil {
			b.Fatal(aerr)
		}
	}
}

// BenchmarkStorable is the check every payload passes before it is published (storable.go),
// on the 1 KiB traces request of BenchmarkDecodeTraces.
func BenchmarkStorable(b *testing.B) {
	body := traces1KiB(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := storable(Traces, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOfficialDecode is what the check replaces: proto.Unmarshal into the official
// type, the oracle of the tests.
func BenchmarkOfficialDecode(b *testing.B) {
	body := traces1KiB(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := (proto.UnmarshalOptions{RecursionLimit: maxMessageDepth}).Unmarshal(body, officialRequest(Traces)); err != nil {
			b.Fatal(err)
		}
	}
}
