package api

import (
	"context"
	"math"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// ListCheckpoints lists the caller's account's signed checkpoints in chain order
// (sequence, then kind), a page at a time, with the public key they verify under.
func (s *Server) ListCheckpoints(ctx context.Context, req *auditv1.ListCheckpointsRequest) (*auditv1.ListCheckpointsResponse, error) {
	account, err := reader(ctx, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(req.GetLimit())
	if err != nil {
		return nil, err
	}
	after := store.CheckpointPosition{Sequence: int64(req.GetAfterSequence()), Kind: req.GetAfterKind()}
	switch {
	case after.Sequence < 0:
		return nil, invalid("after_sequence must not be negative")
	case after.Kind != "" && after.Kind != chain.KindHead && after.Kind != chain.KindCut:
		return nil, invalid("after_kind must be %q, %q or empty", chain.KindCut, chain.KindHead)
	}
	cps, err := s.store.ListCheckpoints(ctx, account, after, limit+1)
	if err != nil {
		return nil, postgres.Error(err, nil)
	}
	resp := &auditv1.ListCheckpointsResponse{PublicKey: s.signer.PublicKey()}
	if len(cps) > limit {
		cps = cps[:limit]
		resp.NextAfterSequence, resp.NextAfterKind = sequence32(cps[limit-1].Sequence), cps[limit-1].Kind
	}
	resp.Checkpoints = make([]*auditv1.Checkpoint, len(cps))
	for i, c := range cps {
		resp.Checkpoints[i] = &auditv1.Checkpoint{
			Kind: c.Kind, AccountId: c.AccountID, Sequence: sequence32(c.Sequence), Hash: c.Hash,
			SignedAt: timestamppb.New(c.SignedAt), PublicKey: c.PublicKey, Signature: c.Signature,
		}
	}
	return resp, nil
}

// sequence32 is a chain position as the API carries it: 32-bit, so REST shows a JSON number
// (a chain 2^31 events long is far off; record.go saturates the same way).
func sequence32(seq int64) int32 { return int32(min(seq, math.MaxInt32)) }
