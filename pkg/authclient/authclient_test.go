package authclient

import (
	"context"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
)

// The paths that need no other service. Sessions and account keys are tested end to end
// with the real accounts and keys services in services/audit (TestCallers).
func TestLocalDecisions(t *testing.T) {
	const op = "operator-token-0123456789"
	// No clients: any RPC would panic, so these prove none is made.
	authn := New(nil, nil, op)
	p, err := authn(context.Background(), op)
	if err != nil || p.Kind != auth.KindOperator || p.AccountID != "" {
		t.Fatalf("operator token: %+v, %v", p, err)
	}
	for _, tok := range []string{"", strings.Repeat("x", MaxTokenLen+1), auth.SessionTokenPrefix + strings.Repeat("y", MaxTokenLen)} {
		if _, err := authn(context.Background(), tok); !apierr.IsCode(err, apierr.Unauthenticated) {
			t.Fatalf("token of %d bytes: %v", len(tok), err)
		}
	}
	if _, err := New(nil, nil, "")(context.Background(), ""); !apierr.IsCode(err, apierr.Unauthenticated) {
		t.Fatalf("an unset operator token and an empty bearer: %v", err)
	}
}
