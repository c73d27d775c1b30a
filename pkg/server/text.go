package server

import (
	"context"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// checkedPackage is the proto package whose requests checkText guards: Latchkey's own
// APIs. Foreign protocols served beside them (OTLP, gRPC health, reflection) keep their
// own rules; an OTLP log body may well hold a NUL.
const checkedPackage = "latchkey."

// ValidText is the rule every string of every Latchkey request meets, whatever the field:
// valid UTF-8 (proto3 and JSON require it; Go would carry the bytes anyway) and no NUL
// (Postgres text cannot hold one, so a NUL would fail deep in a query as a 500). Other
// control characters are left to each field's own rule: tabs and newlines are fair in a
// password, a revocation reason or a metadata value, and names refuse them already.
func ValidText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// checkText is the server interceptor that refuses a request with a string that is not
// ValidText anywhere in its message (fields, nested messages, lists, map keys and values),
// before authentication or a handler sees it: 400 invalid_argument naming the field.
func checkText(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok && checked(m) {
		if field := badText(m.ProtoReflect(), ""); field != "" {
			return nil, textError(field)
		}
	}
	return next(ctx, req)
}

// checkTextOut is checkText for the REST bridge's in-process client connection. The
// bridge builds the message from the path, query and body; a string there that is not
// valid UTF-8 cannot even be marshalled to reach the server (gRPC would answer INTERNAL),
// so it is refused here, with the same rule and message. The status carries no ErrorInfo,
// so the bridge reports it as a call it refused (HTTPConfig.Rejected).
func checkTextOut(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if m, ok := req.(proto.Message); ok && checked(m) {
		if field := badText(m.ProtoReflect(), ""); field != "" {
			return status.Error(codes.InvalidArgument, textError(field).Message)
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func checked(m proto.Message) bool {
	return strings.HasPrefix(string(m.ProtoReflect().Descriptor().FullName()), checkedPackage)
}

func textError(field string) *apierr.Error {
	return apierr.New(apierr.InvalidArgument, "%s must be valid UTF-8 text without NUL characters", field)
}

// badText returns the path of the first string in m that is not ValidText ("" for none),
// in proto field names: key.name, capabilities[2], update_mask.paths[0], metadata (a
// value). Map keys are not echoed: they are client text of any kind.
func badText(m protoreflect.Message, prefix string) string {
	var bad string
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		path := string(fd.Name())
		if prefix != "" {
			path = prefix + "." + path
		}
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if ks, ok := k.Interface().(string); ok && !ValidText(ks) {
					bad = path + " (a key)"
					return false
				}
				bad = badValue(fd.MapValue(), mv, path+" (a value)")
				return bad == ""
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && bad == ""; i++ {
				bad = badValue(fd, l.Get(i), path+"["+strconv.Itoa(i)+"]")
			}
		default:
			bad = badValue(fd, v, path)
		}
		return bad == ""
	})
	return bad
}

// badValue checks one value of fd's kind (a singular field, a list element or a map value).
func badValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !ValidText(v.String()) {
			return path
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return badText(v.Message(), path)
	}
	return ""
}
