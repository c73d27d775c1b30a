package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// Limits of POST /ingest/logs, besides the body limit.
const (
	maxJSONLogs          = 1000
	maxJSONMessageBytes  = 64 << 10
	maxJSONServiceBytes  = 256
	maxJSONAttributes    = 128
	maxJSONAttrKeyBytes  = 256
	jsonLogsLevelDefault = "info"
)

type jsonLogsRequest struct {
	Service string          `json:"service"`
	Logs    []jsonLogRecord `json:"logs"`
}

type jsonLogRecord struct {
	Level      string         `json:"level"`
	Message    *string        `json:"message"`
	Timestamp  string         `json:"timestamp"`
	Attributes map[string]any `json:"attributes"`
}

// levels maps the accepted levels (case-insensitive) to OTLP severity numbers.
var levels = map[string]plog.SeverityNumber{
	"trace":    plog.SeverityNumberTrace,
	"debug":    plog.SeverityNumberDebug,
	"info":     plog.SeverityNumberInfo,
	"warn":     plog.SeverityNumberWarn,
	"warning":  plog.SeverityNumberWarn,
	"error":    plog.SeverityNumberError,
	"fatal":    plog.SeverityNumberFatal,
	"critical": plog.SeverityNumberFatal,
}

// levelNames lists the accepted levels for error messages.
var levelNames = func() string {
	names := make([]string, 0, len(levels))
	for n := range levels {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}()

func (h *httpHandler) serveJSONLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	g, aerr := h.authorize(w, r)
	if aerr != nil {
		h.fail(w, r, transportJSONLogs, Logs, aerr)
		return
	}
	if aerr := jsonContentType(r.Header.Get("Content-Type")); aerr != nil {
		h.fail(w, r, transportJSONLogs, Logs, aerr)
		return
	}
	b, aerr := readBody(w, r, h.cfg.MaxBodyBytes)
	if aerr != nil {
		h.fail(w, r, transportJSONLogs, Logs, aerr)
		return
	}
	defer b.release()
	ld, aerr := decodeJSONLogs(b.data, time.Now())
	if aerr != nil {
		h.fail(w, r, transportJSONLogs, Logs, aerr)
		return
	}
	payload, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		h.fail(w, r, transportJSONLogs, Logs, apierr.New(apierr.Internal, "internal error"))
		return
	}
	n := ld.LogRecordCount()
	if err := h.publish(ctx, g, Logs, payload, n); err != nil {
		h.fail(w, r, transportJSONLogs, Logs, apierr.FromError(err))
		return
	}
	requestsTotal.WithLabelValues(transportJSONLogs, string(Logs), "ok").Inc()
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, "{\"accepted\":%d}\n", n)
}

// decodeJSONLogs strictly decodes a /ingest/logs body and converts it to OTLP logs: one
// resource (service.name) and one scope holding every record. now stamps records without
// a timestamp and is every record's observed time. Like an empty OTLP export, a request
// whose logs are empty, null or absent is valid and holds no records.
func decodeJSONLogs(data []byte, now time.Time) (plog.Logs, *apierr.Error) {
	if err := jsonText(data); err != nil {
		return plog.Logs{}, invalid(err.Error())
	}
	var req jsonLogsRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return plog.Logs{}, invalid(jsonDecodeMessage(err))
	}
	if err := dec.Decode(&json.RawMessage{}); !errors.Is(err, io.EOF) {
		return plog.Logs{}, invalid("the body holds more than one JSON value")
	}
	service := strings.TrimSpace(req.Service)
	switch {
	case service == "":
		return plog.Logs{}, invalid("service is required")
	case len(service) > maxJSONServiceBytes:
		return plog.Logs{}, invalid(fmt.Sprintf("service is over %d bytes", maxJSONServiceBytes))
	case len(req.Logs) > maxJSONLogs:
		return plog.Logs{}, invalid(fmt.Sprintf("logs holds %d records; at most %d are allowed per request", len(req.Logs), maxJSONLogs))
	}

	ld := plog.NewLogs()
	if len(req.Logs) == 0 {
		return ld, nil
	}
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", service)
	records := rl.ScopeLogs().AppendEmpty().LogRecords()
	records.EnsureCapacity(len(req.Logs))
	observed := pcommon.NewTimestampFromTime(now)
	for i, in := range req.Logs {
		lr := records.AppendEmpty()
		if err := fillRecord(lr, in, observed); err != "" {
			return plog.Logs{}, invalid(fmt.Sprintf("logs[%d].%s", i, err))
		}
	}
	return ld, nil
}

// fillRecord converts one record; it returns what is wrong with it ("field: reason"), or "".
func fillRecord(lr plog.LogRecord, in jsonLogRecord, observed pcommon.Timestamp) string {
	if in.Message == nil {
		return "message is required"
	}
	if len(*in.Message) > maxJSONMessageBytes {
		return fmt.Sprintf("message is over %d bytes", maxJSONMessageBytes)
	}
	level := strings.TrimSpace(in.Level)
	if level == "" {
		level = jsonLogsLevelDefault
	}
	sev, ok := levels[strings.ToLower(level)]
	if !ok {
		return fmt.Sprintf("level %q is not one of %s", shorten(level, 32), levelNames)
	}
	ts := observed
	if in.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, in.Timestamp)
		// OTLP timestamps are unsigned nanoseconds since 1970 and must fit an int64 too.
		if err != nil || t.Year() < 1970 || t.Year() > 2261 {
			return fmt.Sprintf("timestamp %q is not an RFC 3339 time between 1970 and 2261 (e.g. 2025-05-01T12:00:00Z)", shorten(in.Timestamp, 64))
		}
		ts = pcommon.NewTimestampFromTime(t)
	}
	if len(in.Attributes) > maxJSONAttributes {
		return fmt.Sprintf("attributes holds %d entries; at most %d are allowed", len(in.Attributes), maxJSONAttributes)
	}
	lr.SetTimestamp(ts)
	lr.SetObservedTimestamp(observed)
	lr.SetSeverityText(level)
	lr.SetSeverityNumber(sev)
	lr.Body().SetStr(*in.Message)
	if len(in.Attributes) == 0 {
		return ""
	}
	attrs := lr.Attributes()
	attrs.EnsureCapacity(len(in.Attributes))
	// Sorted, so the same input always makes the same bytes.
	keys := make([]string, 0, len(in.Attributes))
	for k := range in.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "" || len(k) > maxJSONAttrKeyBytes {
			return fmt.Sprintf("attributes: keys must be 1 to %d bytes", maxJSONAttrKeyBytes)
		}
		switch v := in.Attributes[k].(type) {
		case string:
			attrs.PutStr(k, v)
		case bool:
			attrs.PutBool(k, v)
		case json.Number:
			if i, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
				attrs.PutInt(k, i)
			} else if f, err := strconv.ParseFloat(v.String(), 64); err == nil {
				attrs.PutDouble(k, f)
			} else {
				return fmt.Sprintf("attributes.%s: %s is out of range", quoteKey(k), shorten(v.String(), 32))
			}
		default:
			return fmt.Sprintf("attributes.%s must be a string, number or boolean", quoteKey(k))
		}
	}
	return ""
}

func quoteKey(k string) string {
	k = shorten(k, 64)
	if utf8.ValidString(k) && !strings.ContainsAny(k, " .\"\\") {
		return k
	}
	return strconv.Quote(k)
}

func invalid(msg string) *apierr.Error {
	return &apierr.Error{Code: apierr.InvalidArgument, Message: msg}
}

// jsonDecodeMessage says what encoding/json found wrong, in terms of the request's fields
// rather than Go's types.
func jsonDecodeMessage(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("the body is not valid JSON (%s at byte %d)", syn.Error(), syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("the body must be a JSON object, not %s", typ.Value)
		}
		return fmt.Sprintf("%s has the wrong type: got %s, want %s", typ.Field, typ.Value, jsonTypeName(typ.Type.String()))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the body is not valid JSON (it ends too early)"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return msg + "; allowed are service, logs and, per record, level, message, timestamp, attributes"
	}
	return "the body is not valid JSON: " + shorten(msg, 200)
}

func jsonTypeName(goType string) string {
	switch {
	case goType == "string", goType == "*string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case strings.HasPrefix(goType, "ingest."):
		return "an object"
	default:
		return goType
	}
}
