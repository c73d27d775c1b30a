package server

import (
	"reflect"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// requestCodec is every Latchkey gRPC server's codec: the registered "proto" codec (the
// OTLP packages replace it with their own when linked), except that a request message it
// cannot decode is answered InvalidArgument, as any other bad input is, instead of the
// Internal that gRPC gives every Unmarshal error before a handler or interceptor runs.
//
// So Unmarshal reports success, resets the message and keeps the failure beside it; the
// first interceptor that sees the message (rejectMalformed, or RecvMsg of a server
// stream) takes the failure back and answers InvalidArgument, so no handler, hook or log
// ever sees a half-decoded message.
type requestCodec struct {
	encoding.CodecV2
	failed sync.Map // the message (a pointer) → its decode error
}

func newRequestCodec() *requestCodec {
	return &requestCodec{CodecV2: encoding.GetCodecV2("proto")}
}

// Unmarshal decodes data into v; see requestCodec for what a failure does.
func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	if m, ok := v.(proto.Message); ok {
		proto.Reset(m)
	} else if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	c.failed.Store(v, err)
	return nil
}

// take returns, once, the InvalidArgument for a message that failed to decode, else nil.
func (c *requestCodec) take(msg any) error {
	v, ok := c.failed.LoadAndDelete(msg)
	if !ok {
		return nil
	}
	return apierr.New(apierr.InvalidArgument, "the request message is not valid protobuf for this method: %v", v)
}

// serverOption installs the codec on a server, whatever content subtype a client names.
func (c *requestCodec) serverOption() grpc.ServerOption { return grpc.ForceServerCodecV2(c) }
