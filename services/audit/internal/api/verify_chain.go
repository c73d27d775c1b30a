package api

import (
	"context"
	"math"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// VerifyChain walks the caller's account's chain in sequence order, recomputing each hash,
// against the chain's signed checkpoints (chain.Walker has the rules): the chain must start
// at its first event or where retention's latest signed cut says, each event's hash must
// match its content and prev_hash, each prev_hash the hash before it, each sequence the
// next one, every event a head checkpoint names must have the signed hash, and the last
// event must be the chain's recorded head and no older than the newest head checkpoint.
// Every checkpoint's signature must be valid under the service's key. first_bad_id names
// the first event that fails (the last that remains when events were removed from the
// end); problem says what is wrong.
func (s *Server) VerifyChain(ctx context.Context, req *auditv1.VerifyChainRequest) (*auditv1.VerifyChainResponse, error) {
	account, err := reader(ctx, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	var (
		w         *chain.Walker
		bad, last string
		forged    bool
	)
	head, err := s.store.Walk(ctx, account, func(cps []chain.Checkpoint) {
		for i := range cps {
			if !s.signer.Valid(&cps[i]) {
				forged = true
			}
		}
		w = chain.NewWalker(cps...)
	}, func(e *store.Event) bool {
		if forged {
			return false
		}
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
	resp := &auditv1.VerifyChainResponse{Ok: true, EventsChecked: int32(min(w.Checked, math.MaxInt32))}
	switch {
	case forged:
		resp.Problem = "a checkpoint's signature is not valid under this service's key: checkpoints were forged or the signing key changed"
	case bad != "":
		resp.FirstBadId, resp.Problem = bad, w.Problem
	case !w.Ends(head.Sequence, head.Hash):
		resp.FirstBadId, resp.Problem = last, w.Problem
	}
	resp.Ok = resp.GetProblem() == ""
	return resp, nil
}
