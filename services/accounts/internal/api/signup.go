package api

import (
	"context"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/services/accounts/internal/password"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
)

// SignUp creates an account on the free plan with a trial, its first user and a session.
func (s accountsServer) SignUp(ctx context.Context, req *accountsv1.SignUpRequest) (*accountsv1.SignUpResponse, error) {
	email, err := parseEmail(req.GetEmail())
	if err != nil {
		return nil, err
	}
	if err := password.Check(req.GetPassword()); err != nil {
		return nil, invalid("the password is too weak: %s", password.Rule)
	}
	name, err := parseName("account_name", req.GetAccountName())
	if err != nil {
		return nil, err
	}
	hash, err := password.Hash(req.GetPassword())
	if err != nil {
		return nil, err
	}
	t := now()
	a := store.Account{
		ID:          ids.New(ids.Account),
		Name:        name,
		Plan:        store.PlanFree,
		Status:      store.StatusActive,
		TrialEndsAt: t.Add(s.cfg.TrialPeriod),
		CreatedAt:   t,
		UpdatedAt:   t,
	}
	u := store.User{ID: ids.New(ids.User), AccountID: a.ID, Email: email, PasswordHash: hash, CreatedAt: t}
	tok, sess, err := s.newSession(u, t)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.SignUp(ctx, a, u, sess); err != nil {
		return nil, storeErr(err, nil)
	}
	return &accountsv1.SignUpResponse{
		Account: accountPB(a),
		User:    userPB(u),
		Session: &accountsv1.Session{Token: tok, ExpiresAt: ts(sess.ExpiresAt)},
	}, nil
}
