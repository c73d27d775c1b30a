package api

import (
	"context"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/services/accounts/internal/password"
)

// VerifyPassword re-checks the session user's password and opens the step-up window.
// A wrong password is 401 (as at login); the session itself stays valid.
func (s accountsServer) VerifyPassword(ctx context.Context, req *accountsv1.VerifyPasswordRequest) (*accountsv1.VerifyPasswordResponse, error) {
	p, err := auth.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := presentedPassword(req.GetPassword()); err != nil {
		return nil, err
	}
	u, err := s.cfg.Store.User(ctx, p.AccountID, p.UserID)
	if err != nil {
		return nil, storeErr(err, errSessionInvalid)
	}
	ok, err := password.Verify(req.GetPassword(), u.PasswordHash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errWrongPassword
	}
	t := now()
	until, err := s.cfg.Store.OpenStepUp(ctx, p.AccountID, p.SessionID, t.Add(s.cfg.StepUpWindow), t)
	if err != nil {
		return nil, storeErr(err, errSessionInvalid)
	}
	return &accountsv1.VerifyPasswordResponse{StepUpExpiresAt: ts(until)}, nil
}
