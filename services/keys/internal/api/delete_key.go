package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
)

// DeleteKey revokes a key exactly as RevokeKey does (the same checks, event, receipt and,
// for a replace_on_revoke type, replacement), for the schemes that revoke by DELETE. The
// row stays for history: the key is revoked, not erased.
func (s *Server) DeleteKey(ctx context.Context, req *keysv1.DeleteKeyRequest) (*keysv1.DeleteKeyResponse, error) {
	r, err := s.RevokeKey(ctx, &keysv1.RevokeKeyRequest{
		Id: req.GetId(), Reason: req.GetReason(), WaitForGateways: req.GetWaitForGateways(), WaitTimeoutMs: req.GetWaitTimeoutMs(),
	})
	if err != nil {
		return nil, err
	}
	return &keysv1.DeleteKeyResponse{Key: r.GetKey(), Receipt: r.GetReceipt(), Replacement: r.GetReplacement()}, nil
}
