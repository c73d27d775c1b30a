package api

import (
	"context"
	"sync"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
)

// maxVerifyKeys bounds the requests of one VerifyKeys call.
const maxVerifyKeys = 1000

// VerifyKeys answers each request as VerifyKey answers the operator (operator only). The
// requests are verified at once, so their Postgres and accounts lookups share batches
// (verifyLookups, directory); any error fails the call, as it would have failed the
// VerifyKey call it belongs to, and the gateway retries none of it.
func (i internalServer) VerifyKeys(ctx context.Context, req *keysv1.VerifyKeysRequest) (*keysv1.VerifyKeysResponse, error) {
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	reqs := req.GetRequests()
	if len(reqs) > maxVerifyKeys {
		return nil, invalid("at most %d requests per call", maxVerifyKeys)
	}
	for _, r := range reqs {
		if len(r.GetOrigin()) > 2048 || len(r.GetCapability()) > 64 {
			return nil, invalid("origin or capability is too long")
		}
	}
	resp := &keysv1.VerifyKeysResponse{Responses: make([]*keysv1.VerifyKeyResponse, len(reqs))}
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for j, r := range reqs {
		wg.Go(func() {
			resp.Responses[j], _, errs[j] = i.s.verify(ctx, r.GetKey(), "", true, r.GetOrigin(), r.GetCapability())
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return resp, nil
}
