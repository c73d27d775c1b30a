package api

import (
	"context"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/auth"
)

// GetAccount returns the session user's account.
func (s accountsServer) GetAccount(ctx context.Context, _ *accountsv1.GetAccountRequest) (*accountsv1.GetAccountResponse, error) {
	p, err := auth.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.cfg.Store.Account(ctx, p.AccountID)
	if err != nil {
		return nil, storeErr(err, errSessionInvalid)
	}
	return &accountsv1.GetAccountResponse{Account: accountPB(a)}, nil
}
