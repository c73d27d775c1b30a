package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Signal is the kind of telemetry; it is the last token of the subject.
type Signal string

// The three OTLP signals.
const (
	Traces  Signal = "traces"
	Metrics Signal = "metrics"
	Logs    Signal = "logs"
)

// format is the wire encoding of an OTLP/HTTP body.
type format int

const (
	formatProto format = iota
	formatJSON
)

// Content types of OTLP/HTTP.
const (
	contentTypeProto = "application/x-protobuf"
	contentTypeJSON  = "application/json"
)

func (f format) contentType() string {
	if f == formatJSON {
		return contentTypeJSON
	}
	return contentTypeProto
}

// exportRequest is what pdata's three Export*Request types have in common.
type exportRequest interface {
	UnmarshalProto([]byte) error
	UnmarshalJSON([]byte) error
	MarshalProto() ([]byte, error)
}

// newExportRequest returns an empty request of sig and a function counting its items
// (spans, data points or log records).
func newExportRequest(sig Signal) (exportRequest, func() int) {
	switch sig {
	case Traces:
		r := ptraceotlp.NewExportRequest()
		return r, func() int { return r.Traces().SpanCount() }
	case Metrics:
		r := pmetricotlp.NewExportRequest()
		return r, func() int { return r.Metrics().DataPointCount() }
	default:
		r := plogotlp.NewExportRequest()
		return r, func() int { return r.Logs().LogRecordCount() }
	}
}

var errDecoderPanic = errors.New("the decoder could not parse the body")

// decodeOTLP validates body as an OTLP export request of sig and returns the protobuf to
// publish and how many items it holds. Protobuf input is published as sent (it has just
// been proven to decode; no bytes are an empty request); JSON input is re-marshalled so
// consumers see one format. Whether the payload may be stored is publishExport's to say.
func decodeOTLP(sig Signal, f format, body []byte) (payload []byte, items int, err error) {
	// pdata is fuzzed upstream, but a panic on hostile input must still end as a 400.
	defer func() {
		if r := recover(); r != nil {
			payload, items, err = nil, 0, errDecoderPanic
		}
	}()
	req, count := newExportRequest(sig)
	if f == formatJSON {
		if err := jsonText(body); err != nil {
			return nil, 0, err
		}
		// pdata's iterator stops at the end of the first value and skips what it does not
		// know without checking it; a full syntax check keeps "invalid JSON" a 400.
		if !json.Valid(body) {
			return nil, 0, errors.New("the body is not valid JSON")
		}
		if err := req.UnmarshalJSON(body); err != nil {
			return nil, 0, err
		}
		payload, err = req.MarshalProto()
		if err != nil {
			return nil, 0, err
		}
		return payload, count(), nil
	}
	if err := req.UnmarshalProto(body); err != nil {
		return nil, 0, err
	}
	return body, count(), nil
}

// decodeError is the client-facing text of a decoding failure; the cause is cut short,
// since pdata's JSON errors quote the input at length.
func decodeError(sig Signal, f format, err error) string {
	enc := "protobuf"
	if f == formatJSON {
		enc = "JSON"
	}
	return fmt.Sprintf("the body is not a valid OTLP %s export request in %s: %s", sig, enc, shorten(err.Error(), 200))
}

// shorten cuts s to at most n bytes of valid UTF-8, for echoing client input in messages.
func shorten(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
