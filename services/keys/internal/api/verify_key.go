package api

import (
	"context"
	"time"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/batch"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// VerifyKey answers whether a presented key may be used. Operators and gateways (the
// operator token) may verify any key; an account's own callers see only its keys, and
// another account's key, or an anonymous one (which belongs to no account), is not_found
// to them.
func (s *Server) VerifyKey(ctx context.Context, req *keysv1.VerifyKeyRequest) (*keysv1.VerifyKeyResponse, error) {
	p, err := auth.RequireAny(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.GetOrigin()) > 2048 || len(req.GetCapability()) > 64 {
		return nil, invalid("origin or capability is too long")
	}
	// Gateways (the operator token) cache this answer: give them facts fresh from accounts.
	// Others see only their own account's keys.
	viewer := p.AccountID
	if p.Kind == auth.KindOperator {
		viewer = ""
	}
	resp, _, err := s.verify(ctx, req.GetKey(), viewer, p.Kind == auth.KindOperator, req.GetOrigin(), req.GetCapability())
	return resp, err
}

// verify decides on using key from origin for capability, as VerifyKey answers it; it is
// also how this service resolves the account keys that call it (ResolveKey). viewer, when
// set, is the only account whose keys are found; fresh skips the directory's cache. The
// account is returned when the key was found.
func (s *Server) verify(ctx context.Context, key, viewer string, fresh bool, origin, capability string) (*keysv1.VerifyKeyResponse, *accountsv1.Account, error) {
	parsed, err := s.types.Parse(key)
	if err != nil {
		return &keysv1.VerifyKeyResponse{Code: string(verdict.Malformed)}, nil, nil
	}
	hash := s.hasher.Hash(key)
	k, ok, err := s.byHash.Get(ctx, string(hash[:]))
	if err != nil {
		return nil, nil, err
	}
	if !ok || viewer != "" && k.AccountID != viewer {
		return &keysv1.VerifyKeyResponse{Code: string(verdict.NotFound)}, nil, nil
	}
	facts := verdict.Facts{
		Lifetime: k.Lifetime(), Capabilities: k.Capabilities, Browser: parsed.Type.Browser, BrowserOnly: parsed.Type.BrowserOnly(),
	}
	resp := &keysv1.VerifyKeyResponse{}
	var acct *accountsv1.Account
	if k.ProjectID != "" {
		var proj *accountsv1.Project
		proj, acct, err = s.dir.ProjectAndAccount(ctx, k.AccountID, k.ProjectID, fresh)
		switch {
		case apierr.IsCode(err, apierr.NotFound):
			// The project is gone, and its keys with it.
			return &keysv1.VerifyKeyResponse{Code: string(verdict.NotFound)}, nil, nil
		case err != nil:
			return nil, nil, err
		case !environments(proj).Holds(k.Environment, k.EnvironmentAddedAt):
			// So are the keys of an environment dropped since they were minted (accounts
			// refuses to drop one with live keys, but a key minted while the drop was under
			// way slips past it), even once the environment is added back.
			return &keysv1.VerifyKeyResponse{Code: string(verdict.NotFound)}, nil, nil
		}
		facts.AllowedOrigins = proj.GetAllowedOrigins()
		resp.AllowedOrigins = proj.GetAllowedOrigins()
	} else if k.AccountID != "" {
		if acct, err = s.dir.Account(ctx, k.AccountID, fresh); err != nil {
			return nil, nil, err
		}
	} // else an anonymous key: no account to be suspended, no project to hold origins.
	facts.AccountSuspended = acct.GetStatus() == "suspended"
	now := s.now()
	code := verdict.Decide(&facts, now, origin, capability)
	if code == verdict.OK {
		s.usage.Used(k.ID)
	}
	resp.Valid = code == verdict.OK
	resp.Code = string(code)
	resp.Key = toProto(k, now)
	return resp, acct, nil
}

// Batches of verification lookups: verifySlots queries at once, each of at most
// maxVerifyBatch hashes. One slot makes the biggest batches: with 16 concurrent VerifyKey
// callers on 2 cores, 1 slot cost 72 µs of Postgres CPU and 218 to 243 µs of the suite's
// per call, 2 slots 92 to 113 and 210 to 279 µs, 4 slots 126 to 139 and 254 to 319 µs
// (BenchmarkVerifyKeyGRPC; docs/scale.md, "Misses"). A query holds the slot for at most
// verifyTimeout.
const (
	verifySlots    = 1
	maxVerifyBatch = 500
	verifyTimeout  = 5 * time.Second
)

// verifyLookups finds keys by keyed hash for verify, the lookups of concurrent calls in
// one query (package batch): a call's lookup never shares a query that began before it,
// so the answer a gateway caches is never older than its call.
func verifyLookups(st *store.Store) *batch.Group[string, *store.Key] {
	return batch.New(func(ctx context.Context, hashes []string) (map[string]*store.Key, error) {
		raw := make([][]byte, len(hashes))
		for i, h := range hashes {
			raw[i] = []byte(h)
		}
		keys, err := st.ByHashes(ctx, raw)
		if err != nil {
			return nil, err
		}
		out := make(map[string]*store.Key, len(keys))
		for _, k := range keys {
			out[string(k.Hash)] = k
		}
		return out, nil
	}, verifySlots, maxVerifyBatch, verifyTimeout)
}
