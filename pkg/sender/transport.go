package sender

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

// The gateway's request id (pkg/requestid, not imported for two names).
const (
	requestIDHeader   = "X-Request-Id"
	requestIDMetadata = "x-request-id"
)

// gatewayTransport is the HTTP exporters' RoundTripper: it sends every request to base
// with the key as its bearer token (replacing any Authorization the exporter's headers
// carry, e.g. from OTEL_EXPORTER_OTLP_HEADERS, whose other headers stay), and shows the
// watcher each answer's notice header and, for 401 and 403, the error body (which the
// exporter then reads as if untouched).
type gatewayTransport struct {
	base   http.RoundTripper
	bearer string
	w      *watcher
}

// RoundTrip implements http.RoundTripper.
func (t *gatewayTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context()) // a RoundTripper must not modify its request
	req.Header.Set("Authorization", t.bearer)
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if v := resp.Header.Values(NoticeHeader); len(v) > 0 {
		t.w.sawNotice(v)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		// The exporter reads the body after this: what was read, then the rest.
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), errReader{rerr}, resp.Body), resp.Body}
		e := parseEnvelope(resp.StatusCode, body)
		if e.requestID == "" {
			e.requestID = keyformat.Redact(resp.Header.Get(requestIDHeader))
		}
		t.w.sawRejection(Rejection{
			Code: e.code, Reason: e.reason, Message: e.message, HTTPStatus: resp.StatusCode, RequestID: e.requestID,
			Signal: signalOf(req.URL.Path),
		})
	}
	return resp, nil
}

// errReader fails with err, or ends at once when err is nil.
type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	return 0, io.EOF
}

// unaryInterceptor returns the gRPC exporters' client interceptor: it sends the key as the
// bearer token of every call (replacing any authorization the exporter's headers carry,
// keeping the others) and shows the watcher the notice in each answer's header metadata (or
// trailers, which carry it on an answer with no header) and, for UNAUTHENTICATED and
// PERMISSION_DENIED, the status and its ErrorInfo.
func (w *watcher) unaryInterceptor(bearer string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		md.Set("authorization", bearer)
		return w.watchCall(metadata.NewOutgoingContext(ctx, md), method, req, reply, cc, invoker, opts...)
	}
}

func (w *watcher) watchCall(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	var header, trailer metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&header), grpc.Trailer(&trailer))...)
	if v := append(header.Get(NoticeMetadata), trailer.Get(NoticeMetadata)...); len(v) > 0 {
		w.sawNotice(v)
	}
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok || (st.Code() != codes.Unauthenticated && st.Code() != codes.PermissionDenied) {
		return err
	}
	// apierr reads the ErrorInfo reason of Latchkey's domain, and a code from the status
	// when there is none; it redacts the message.
	e := apierr.FromStatus(st)
	rid := append(header.Get(requestIDMetadata), trailer.Get(requestIDMetadata)...)
	r := Rejection{Code: string(e.Code), Message: e.Message, GRPCCode: st.Code(), Signal: signalOf(method)}
	if reason := e.Metadata["reason"]; isMachineCode(reason) {
		r.Reason = reason
	}
	if len(rid) > 0 {
		r.RequestID = keyformat.Redact(rid[0])
	}
	w.sawRejection(r)
	return err
}
