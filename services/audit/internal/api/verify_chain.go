package api

import (
	"context"
	"math"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// VerifyChain walks the caller's account's chain in sequence order, recomputing each hash.
// It starts at the oldest remaining event and trusts that event's prev_hash (retention
// deletes the oldest events); from there each event's hash must match its content and
// prev_hash, each prev_hash the hash before it, and each sequence the next one.
// first_bad_id names the first event that fails. The last event must also be the chain's
// recorded head: when events were removed from the end, ok is false and first_bad_id
// names the last event that remains.
func (s *Server) VerifyChain(ctx context.Context, req *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
	account, err := reader(ctx, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	w := chain.NewWalker()
	var bad, last string
	head, err := s.store.Walk(ctx, account, func(e *store.Event) bool {
		last = e.ID
		if !w.Next(chain.Link{Sequence: e.Sequence, PrevHash: e.PrevHash, Hash: e.Hash}, &e.Content) {
			bad = e.ID
			return false
		}
		return true
	})
	if err != nil {
		return nil, postgres.Error(err, nil)
	}
	if bad == "" && !w.Ends(head.Sequence, head.Hash) {
		bad = last
	}
	return &auditv1.VerifyChainResponse{Ok: bad == "", EventsChecked: int32(min(w.Checked, math.MaxInt32)), FirstBadId: bad}, nil
}
