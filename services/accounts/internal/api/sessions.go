package api

import (
	"context"
	"errors"
	"sync"
	"time"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/services/accounts/internal/password"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
	"github.com/latchkey/latchkey/services/accounts/internal/token"
)

// dummyHash is verified against when the email is unknown, so a login for a missing user
// costs what one for a real user does and timing does not tell them apart.
var dummyHash = sync.OnceValues(func() (string, error) {
	t, err := token.New()
	if err != nil {
		return "", err
	}
	return password.Hash(t)
})

// newSession makes a session for u and returns its token, which is never stored.
func (s *Service) newSession(u store.User, t time.Time) (string, store.Session, error) {
	tok, err := token.New()
	if err != nil {
		return "", store.Session{}, err
	}
	return tok, store.Session{
		ID:        ids.New(ids.Session),
		UserID:    u.ID,
		AccountID: u.AccountID,
		TokenHash: token.Hash(tok),
		CreatedAt: t,
		ExpiresAt: t.Add(s.cfg.SessionTTL),
	}, nil
}

// CreateSession logs a user in with email and password.
func (s accountsServer) CreateSession(ctx context.Context, req *accountsv1.CreateSessionRequest) (*accountsv1.CreateSessionResponse, error) {
	email, err := parseEmail(req.GetEmail())
	if err != nil {
		return nil, err
	}
	if err := presentedPassword(req.GetPassword()); err != nil {
		return nil, err
	}
	u, err := s.cfg.Store.UserByEmail(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		dummy, err := dummyHash()
		if err != nil {
			return nil, err
		}
		_, _ = password.Verify(req.GetPassword(), dummy)
		return nil, errBadCredentials
	}
	if err != nil {
		return nil, storeErr(err, nil)
	}
	ok, err := password.Verify(req.GetPassword(), u.PasswordHash)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errBadCredentials
	}
	a, err := s.cfg.Store.Account(ctx, u.AccountID)
	if err != nil {
		return nil, storeErr(err, nil)
	}
	if a.Status == store.StatusSuspended {
		return nil, errAccountSuspended
	}
	t := now()
	tok, sess, err := s.newSession(u, t)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.CreateSession(ctx, sess); err != nil {
		return nil, storeErr(err, nil)
	}
	return &accountsv1.CreateSessionResponse{
		Session: &accountsv1.Session{Token: tok, ExpiresAt: ts(sess.ExpiresAt)},
		User:    userPB(u),
		Account: accountPB(a),
	}, nil
}

// DeleteCurrentSession revokes the session the call was made with.
func (s accountsServer) DeleteCurrentSession(ctx context.Context, _ *accountsv1.DeleteCurrentSessionRequest) (*accountsv1.DeleteCurrentSessionResponse, error) {
	p, err := auth.RequireUser(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.RevokeSession(ctx, p.AccountID, p.SessionID, now()); err != nil {
		return nil, storeErr(err, errSessionInvalid)
	}
	return &accountsv1.DeleteCurrentSessionResponse{}, nil
}
