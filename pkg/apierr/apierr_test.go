package apierr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every code survives the trip through a gRPC status (another service's reply), with its
// metadata and retry delay, and has one HTTP status.
func TestRoundTripThroughGRPCStatus(t *testing.T) {
	for code, m := range mappings {
		e := &Error{Code: code, Message: "msg", Metadata: map[string]string{"tier": "ip"}, RetryAfter: 1500 * time.Millisecond}
		st := e.GRPCStatus()
		if st.Code() != m.grpc {
			t.Errorf("%s: grpc code %s, want %s", code, st.Code(), m.grpc)
		}
		back := FromError(st.Err())
		if back.Code != code || back.Message != "msg" || back.Metadata["tier"] != "ip" || back.RetryAfter != 1500*time.Millisecond {
			t.Errorf("%s: round trip gave %+v", code, back)
		}
		if back.Metadata["retry_after_seconds"] != "2" {
			t.Errorf("%s: retry_after_seconds = %q, want 2 (rounded up)", code, back.Metadata["retry_after_seconds"])
		}
		if HTTPStatus(code) != m.http {
			t.Errorf("%s: http %d", code, HTTPStatus(code))
		}
	}
}

func TestFromErrorNeverLeaksCauses(t *testing.T) {
	cases := []struct {
		err  error
		code Code
	}{
		{errors.New(`pq: relation "keys" does not exist`), Internal},
		{fmt.Errorf("wrapped: %w", New(NotFound, "key not found")), NotFound},
		{context.Canceled, Canceled},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), DeadlineExceeded},
		// A bare status, as grpc-gateway makes for malformed JSON.
		{status.Error(codes.InvalidArgument, "proto: syntax error"), InvalidArgument},
		{status.Error(codes.Unavailable, "connection refused"), Unavailable},
		{status.Error(codes.DataLoss, "disk on fire"), Internal},
	}
	for _, c := range cases {
		got := FromError(c.err)
		if got.Code != c.code {
			t.Errorf("FromError(%v) = %s, want %s", c.err, got.Code, c.code)
		}
		if c.code == Internal && got.Message != "internal error" {
			t.Errorf("internal cause leaked: %q", got.Message)
		}
	}
	if HTTPStatus("no_such_code") != http.StatusInternalServerError {
		t.Error("unknown codes are 500")
	}
}
