// Package apierr is the one mapping between Latchkey's domain errors, gRPC status (with
// google.rpc.ErrorInfo), HTTP status and the JSON error envelope (docs/rest.md, "Error
// envelope" and "Codes").
package apierr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// Domain is the ErrorInfo domain of every Latchkey error.
const Domain = "latchkey.dev"

// DocsBase is where each machine code is documented: DocsBase + code.
const DocsBase = "https://docs.latchkey.dev/errors/"

// Code is a machine-readable error code, stable across versions.
type Code string

// The codes a client can see. Each has exactly one gRPC code and one HTTP status.
const (
	InvalidArgument        Code = "invalid_argument"
	Unauthenticated        Code = "unauthenticated"
	PermissionDenied       Code = "permission_denied"
	OriginNotAllowed       Code = "origin_not_allowed"
	InsufficientCapability Code = "insufficient_capability"
	PlanRequired           Code = "plan_required"
	StepUpRequired         Code = "step_up_required"
	AccountSuspended       Code = "account_suspended"
	NotFound               Code = "not_found"
	AlreadyExists          Code = "already_exists"
	Conflict               Code = "conflict"
	AlreadyClaimed         Code = "already_claimed" // an anonymous key claimed before (POST /v1/keys:claim)
	IdempotencyKeyReused   Code = "idempotency_key_reused"
	PayloadTooLarge        Code = "payload_too_large"
	RequestHeaderTooLarge  Code = "request_header_too_large" // over server.MaxHeaderBytes
	RateLimited            Code = "rate_limited"
	MethodNotAllowed       Code = "method_not_allowed"
	Canceled               Code = "canceled"
	DeadlineExceeded       Code = "deadline_exceeded"
	Unavailable            Code = "unavailable"
	Internal               Code = "internal"
)

type mapping struct {
	grpc codes.Code
	http int
}

var mappings = map[Code]mapping{
	InvalidArgument:        {codes.InvalidArgument, http.StatusBadRequest},
	Unauthenticated:        {codes.Unauthenticated, http.StatusUnauthorized},
	PermissionDenied:       {codes.PermissionDenied, http.StatusForbidden},
	OriginNotAllowed:       {codes.PermissionDenied, http.StatusForbidden},
	InsufficientCapability: {codes.PermissionDenied, http.StatusForbidden},
	PlanRequired:           {codes.PermissionDenied, http.StatusForbidden},
	StepUpRequired:         {codes.PermissionDenied, http.StatusForbidden},
	AccountSuspended:       {codes.PermissionDenied, http.StatusForbidden},
	NotFound:               {codes.NotFound, http.StatusNotFound},
	AlreadyExists:          {codes.AlreadyExists, http.StatusConflict},
	Conflict:               {codes.Aborted, http.StatusConflict},
	AlreadyClaimed:         {codes.FailedPrecondition, http.StatusConflict},
	IdempotencyKeyReused:   {codes.FailedPrecondition, http.StatusUnprocessableEntity},
	PayloadTooLarge:        {codes.ResourceExhausted, http.StatusRequestEntityTooLarge},
	RequestHeaderTooLarge:  {codes.ResourceExhausted, http.StatusRequestHeaderFieldsTooLarge},
	RateLimited:            {codes.ResourceExhausted, http.StatusTooManyRequests},
	MethodNotAllowed:       {codes.Unimplemented, http.StatusMethodNotAllowed},
	Canceled:               {codes.Canceled, 499},
	DeadlineExceeded:       {codes.DeadlineExceeded, http.StatusGatewayTimeout},
	Unavailable:            {codes.Unavailable, http.StatusServiceUnavailable},
	Internal:               {codes.Internal, http.StatusInternalServerError},
}

// fallback maps a bare gRPC code (from a status without ErrorInfo, e.g. one made by
// grpc-gateway for malformed JSON) to our code.
var fallback = map[codes.Code]Code{
	codes.InvalidArgument:    InvalidArgument,
	codes.OutOfRange:         InvalidArgument,
	codes.Unauthenticated:    Unauthenticated,
	codes.PermissionDenied:   PermissionDenied,
	codes.NotFound:           NotFound,
	codes.AlreadyExists:      AlreadyExists,
	codes.Aborted:            Conflict,
	codes.FailedPrecondition: InvalidArgument,
	codes.ResourceExhausted:  RateLimited,
	codes.Unimplemented:      NotFound,
	codes.Canceled:           Canceled,
	codes.DeadlineExceeded:   DeadlineExceeded,
	codes.Unavailable:        Unavailable,
}

// Error is an error a client may see. Message is shown to the client verbatim, so it must
// never hold a secret or an internal detail; New and FromStatus redact keys in it.
type Error struct {
	Code    Code
	Message string
	// Metadata travels in ErrorInfo and is added to the JSON body (e.g. tier).
	Metadata map[string]string
	// RetryAfter, when set, becomes Retry-After, retry_after_seconds and gRPC RetryInfo.
	RetryAfter time.Duration
}

// New returns an Error with a formatted message. Keys in the message are redacted
// (keyformat.Redact): a message may quote input, and a client may have pasted a secret
// where an id belongs.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: keyformat.Redact(fmt.Sprintf(format, args...))}
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// With returns a copy of e with one metadata entry added.
func (e *Error) With(key, value string) *Error {
	c := *e
	c.Metadata = make(map[string]string, len(e.Metadata)+1)
	for k, v := range e.Metadata {
		c.Metadata[k] = v
	}
	c.Metadata[key] = value
	return &c
}

// GRPCStatus makes Error a gRPC status carrying ErrorInfo (and RetryInfo when retryable).
func (e *Error) GRPCStatus() *status.Status {
	m, ok := mappings[e.Code]
	if !ok {
		m = mappings[Internal]
	}
	st := status.New(m.grpc, e.Message)
	md := e.Metadata
	if e.RetryAfter > 0 {
		md = e.With("retry_after_seconds", strconv.Itoa(RetryAfterSeconds(e.RetryAfter))).Metadata
	}
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: string(e.Code), Domain: Domain, Metadata: md}}
	if e.RetryAfter > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	if withDetails, err := st.WithDetails(details...); err == nil {
		return withDetails
	}
	return st
}

// RetryAfterSeconds rounds a delay up to whole seconds, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

// HTTPStatus is the HTTP status of a code.
func HTTPStatus(code Code) int {
	if m, ok := mappings[code]; ok {
		return m.http
	}
	return http.StatusInternalServerError
}

// FromError turns any error into an *Error. Errors that are not already client-facing
// become Internal with a generic message (the caller logs the cause); context errors keep
// their meaning.
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{Code: Canceled, Message: "the request was canceled"}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: DeadlineExceeded, Message: "the request timed out"}
	}
	if st, ok := status.FromError(err); ok {
		return FromStatus(st)
	}
	return &Error{Code: Internal, Message: "internal error"}
}

// FromStatus reads an *Error back from a gRPC status, e.g. one returned by another service.
func FromStatus(st *status.Status) *Error {
	if st.Code() == codes.OK {
		return nil
	}
	// Redacted as in New: a status made outside this package (the REST bridge's own, say)
	// may quote input.
	e := &Error{Message: keyformat.Redact(st.Message())}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetDomain() == Domain {
				e.Code = Code(d.GetReason())
				e.Metadata = d.GetMetadata()
			}
		case *errdetails.RetryInfo:
			e.RetryAfter = d.GetRetryDelay().AsDuration()
		}
	}
	if _, known := mappings[e.Code]; !known {
		code, ok := fallback[st.Code()]
		if !ok {
			return &Error{Code: Internal, Message: "internal error"}
		}
		e.Code = code
	}
	return e
}

// IsCode reports whether err is (or wraps, or is a status of) an Error with the code.
func IsCode(err error, code Code) bool {
	e := FromError(err)
	return e != nil && e.Code == code
}
