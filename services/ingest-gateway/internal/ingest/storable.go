package ingest

import (
	"context"
	"fmt"
	"unicode/utf8"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// What the gateway stores is decided here, once, for every transport (OTLP/HTTP protobuf
// and JSON, gzipped or not, OTLP/gRPC and POST /ingest/logs): a payload is stored only if
// it decodes as the signal's Export*ServiceRequest under the rules of the official OTLP
// protos (go.opentelemetry.io/proto/otlp) and of every official protobuf decoder:
//
//   - the wire format is well formed (what proto.Unmarshal refuses, we refuse);
//   - every string field of a proto3 message is valid UTF-8 (proto.Unmarshal refuses the
//     whole message otherwise);
//   - messages nest at most maxMessageDepth deep, the root included, as Go's decoder
//     counts with proto.UnmarshalOptions{RecursionLimit: 100}: the C++, Java and Python
//     decoders and pdata have the same limit of 100 but count fewer levels, so they
//     accept whatever passes here.
//
// The check is proto.UnmarshalOptions{RecursionLimit: maxMessageDepth}.Unmarshal without
// building the message: it walks the wire bytes by the protos' descriptors and allocates
// nothing, about a third of pdata's decode and a sixth of proto.Unmarshal's
// (BenchmarkStorable); FuzzStorableAgreesWithDecoder holds it to the decoder's verdict. A payload that passes can be concatenated with others
// (merge.go) and the result still passes: each field is checked on its own.

// maxMessageDepth is how deep messages may nest in a stored export request, the request
// itself counting as 1. In OTLP each level of a kvlistValue costs 3 (AnyValue,
// KeyValueList, KeyValue) and each level of an arrayValue 2 (AnyValue, ArrayValue).
const maxMessageDepth = 100

// publishExport is the one way an export request reaches the Publisher: payload, the
// request in protobuf, is checked by storable (400 invalid_argument when it fails), then
// published unless it holds no items (spans, data points or log records): OTLP makes an
// empty export a success with nothing to store.
func publishExport(ctx context.Context, pub *Publisher, g grant.Grant, sig Signal, payload []byte, items int) error {
	if err := storable(sig, payload); err != nil {
		return apierr.New(apierr.InvalidArgument, "the body is not a valid OTLP %s export request: %s", sig, err.Error())
	}
	if items == 0 {
		return nil
	}
	return pub.Publish(ctx, g, sig, payload)
}

// storable reports why payload, an export request of sig in protobuf, may not be stored,
// or nil.
func storable(sig Signal, payload []byte) error {
	return exportRules[sig].check(payload, 1)
}

// exportRules is the wire rule of each signal's Export*ServiceRequest.
var exportRules = func() map[Signal]*messageRule {
	seen := map[protoreflect.FullName]*messageRule{}
	return map[Signal]*messageRule{
		Traces:  newMessageRule((&coltrace.ExportTraceServiceRequest{}).ProtoReflect().Descriptor(), seen),
		Metrics: newMessageRule((&colmetrics.ExportMetricsServiceRequest{}).ProtoReflect().Descriptor(), seen),
		Logs:    newMessageRule((&collogs.ExportLogsServiceRequest{}).ProtoReflect().Descriptor(), seen),
	}
}()

// messageRule is what the decoder expects of one message type's fields, by field number.
type messageRule struct {
	fields []fieldRule
}

type fieldRule struct {
	known  bool
	name   protoreflect.FullName
	wire   protowire.Type // the wire type the field's kind is decoded from
	packed bool           // a repeated scalar: also decoded from a packed (bytes) run
	utf8   bool           // a string the decoder validates
	msg    *messageRule   // for message fields
}

// newMessageRule compiles md's rule; seen breaks the cycles of recursive types (AnyValue).
// It panics on what OTLP does not use and the walk does not model (groups, extensions),
// which any test run reveals at once.
func newMessageRule(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*messageRule) *messageRule {
	if r, ok := seen[md.FullName()]; ok {
		return r
	}
	r := &messageRule{}
	seen[md.FullName()] = r
	if md.ExtensionRanges().Len() > 0 {
		panic(fmt.Sprintf("ingest: %s has extension ranges, which storable does not model", md.FullName()))
	}
	fds := md.Fields()
	maxNum := 0
	for i := range fds.Len() {
		maxNum = max(maxNum, int(fds.Get(i).Number()))
	}
	r.fields = make([]fieldRule, maxNum+1)
	for i := range fds.Len() {
		fd := fds.Get(i)
		f := fieldRule{known: true, name: fd.FullName()}
		switch fd.Kind() {
		case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
			protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
			f.wire, f.packed = protowire.VarintType, fd.IsList()
		case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
			f.wire, f.packed = protowire.Fixed32Type, fd.IsList()
		case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
			f.wire, f.packed = protowire.Fixed64Type, fd.IsList()
		case protoreflect.StringKind:
			// Proto3 strings are validated; so are editions' unless a feature says otherwise,
			// and checking those too is only stricter. Proto2 strings are not.
			f.wire, f.utf8 = protowire.BytesType, fd.Syntax() != protoreflect.Proto2
		case protoreflect.BytesKind:
			f.wire = protowire.BytesType
		case protoreflect.MessageKind:
			// A map is a repeated entry message to the walk, which counts the entry as a
			// level where Go's decoder does not: stricter, never looser. OTLP has none.
			f.wire, f.msg = protowire.BytesType, newMessageRule(fd.Message(), seen)
		default:
			panic(fmt.Sprintf("ingest: %s is a %s field, which storable does not model", fd.FullName(), fd.Kind()))
		}
		r.fields[fd.Number()] = f
	}
	return r
}

// check walks b as one message at depth (the root is 1) the way proto.Unmarshal's eager
// decoder does (google.golang.org/protobuf/internal/impl/decode.go): a known field in its
// own wire type is decoded and must be valid; in any other wire type it is an unknown
// field, which must merely be well formed.
func (r *messageRule) check(b []byte, depth int) error {
	if depth > maxMessageDepth {
		return fmt.Errorf("messages nest more than %d deep (each level of a kvlistValue counts 3, of an arrayValue 2)", maxMessageDepth)
	}
	for len(b) > 0 {
		var num protowire.Number
		var typ protowire.Type
		if b[0] < 0x80 { // a one-byte tag: fields 1 to 15, nearly every OTLP field
			num, typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
			b = b[1:]
		} else {
			var n int
			num, typ, n = protowire.ConsumeTag(b)
			if n < 0 {
				return malformed(n)
			}
			b = b[n:]
		}
		if num < protowire.MinValidNumber || num > protowire.MaxValidNumber || typ == protowire.EndGroupType {
			return malformed(0)
		}
		f := &unknownField
		if int(num) < len(r.fields) {
			f = &r.fields[num]
		}
		var n int
		var err error
		switch {
		case f.known && typ == f.wire:
			n, err = f.checkValue(b, depth)
		case f.known && f.packed && typ == protowire.BytesType:
			n = checkPacked(b, f.wire)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if err != nil {
			return err
		}
		if n < 0 {
			return malformed(n)
		}
		b = b[n:]
	}
	return nil
}

// unknownField is the rule of a field number the message does not declare.
var unknownField fieldRule

// checkValue checks one value of f in f's own wire type and returns its length (negative
// when the wire format is broken).
func (f *fieldRule) checkValue(b []byte, depth int) (int, error) {
	switch f.wire {
	case protowire.VarintType:
		_, n := protowire.ConsumeVarint(b)
		return n, nil
	case protowire.Fixed32Type:
		_, n := protowire.ConsumeFixed32(b)
		return n, nil
	case protowire.Fixed64Type:
		_, n := protowire.ConsumeFixed64(b)
		return n, nil
	}
	v, n := protowire.ConsumeBytes(b)
	switch {
	case n < 0:
		return n, nil
	case f.utf8 && !utf8.Valid(v):
		return 0, fmt.Errorf("%s is not valid UTF-8, which proto3 strings must be", f.name)
	case f.msg != nil:
		return n, f.msg.check(v, depth+1)
	}
	return n, nil
}

// checkPacked checks a packed run of scalars of wire type typ and returns its length, or
// a negative protowire code.
func checkPacked(b []byte, typ protowire.Type) int {
	v, n := protowire.ConsumeBytes(b)
	for n >= 0 && len(v) > 0 {
		var m int
		switch typ {
		case protowire.VarintType:
			_, m = protowire.ConsumeVarint(v)
		case protowire.Fixed32Type:
			_, m = protowire.ConsumeFixed32(v)
		default:
			_, m = protowire.ConsumeFixed64(v)
		}
		if m < 0 {
			return m
		}
		v = v[m:]
	}
	return n
}

func malformed(code int) error {
	msg := "bad field number or wire type"
	if code < 0 {
		msg = protowire.ParseError(code).Error()
	}
	return fmt.Errorf("the protobuf is malformed (%s)", msg)
}
