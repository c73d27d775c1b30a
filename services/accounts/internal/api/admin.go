package api

import (
	"context"
	"strings"
	"unicode/utf8"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
)

// maxReasonLen bounds the reason of a suspension or reinstatement, in characters.
const maxReasonLen = 500

// SetPlan moves an account to the free or pro plan (operator only).
func (s adminServer) SetPlan(ctx context.Context, req *accountsv1.SetPlanRequest) (*accountsv1.SetPlanResponse, error) {
	// The id first: a malformed one is refused before anything else reads it, with or
	// without credentials (its shape is no secret).
	if err := checkID("account_id", ids.Account, req.GetAccountId()); err != nil {
		return nil, err
	}
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	plan := req.GetPlan()
	if plan != store.PlanFree && plan != store.PlanPro {
		return nil, invalid("plan must be %q or %q", store.PlanFree, store.PlanPro)
	}
	a, err := s.cfg.Store.SetPlan(ctx, req.GetAccountId(), plan, now(), func(prev, next store.Account) *eventsv1.Event {
		ev := newEvent(ctx, next.ID)
		ev.Payload = &eventsv1.Event_AccountPlanChanged{AccountPlanChanged: &eventsv1.AccountPlanChanged{
			Plan:         next.Plan,
			PreviousPlan: prev.Plan,
		}}
		return ev
	})
	if err != nil {
		return nil, storeErr(err, errAccountNotFound)
	}
	s.cfg.Notify()
	return &accountsv1.SetPlanResponse{Account: accountPB(a)}, nil
}

// SuspendAccount suspends an account (operator only): its sessions and keys stop working.
// Suspending a suspended account changes nothing.
func (s adminServer) SuspendAccount(ctx context.Context, req *accountsv1.SuspendAccountRequest) (*accountsv1.SuspendAccountResponse, error) {
	a, err := s.setStatus(ctx, req.GetAccountId(), store.StatusSuspended, req.GetReason(), func(reason string) *eventsv1.Event {
		ev := newEvent(ctx, req.GetAccountId())
		ev.Payload = &eventsv1.Event_AccountSuspended{AccountSuspended: &eventsv1.AccountSuspended{Reason: reason}}
		return ev
	})
	if err != nil {
		return nil, err
	}
	return &accountsv1.SuspendAccountResponse{Account: accountPB(a)}, nil
}

// ReinstateAccount lifts a suspension (operator only): the account's sessions and keys
// work again. Reinstating an active account changes nothing.
func (s adminServer) ReinstateAccount(ctx context.Context, req *accountsv1.ReinstateAccountRequest) (*accountsv1.ReinstateAccountResponse, error) {
	a, err := s.setStatus(ctx, req.GetAccountId(), store.StatusActive, req.GetReason(), func(reason string) *eventsv1.Event {
		ev := newEvent(ctx, req.GetAccountId())
		ev.Payload = &eventsv1.Event_AccountReinstated{AccountReinstated: &eventsv1.AccountReinstated{Reason: reason}}
		return ev
	})
	if err != nil {
		return nil, err
	}
	return &accountsv1.ReinstateAccountResponse{Account: accountPB(a)}, nil
}

// setStatus is SuspendAccount and ReinstateAccount: event makes the change's event from
// the checked reason.
func (s adminServer) setStatus(ctx context.Context, accountID, status, reason string, event func(reason string) *eventsv1.Event) (store.Account, error) {
	if err := checkID("account_id", ids.Account, accountID); err != nil {
		return store.Account{}, err
	}
	if _, err := auth.RequireOperator(ctx); err != nil {
		return store.Account{}, err
	}
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > maxReasonLen {
		return store.Account{}, invalid("reason must be at most %d characters", maxReasonLen)
	}
	a, err := s.cfg.Store.SetStatus(ctx, accountID, status, reason, now(), func(store.Account) *eventsv1.Event { return event(reason) })
	if err != nil {
		return store.Account{}, storeErr(err, errAccountNotFound)
	}
	s.cfg.Notify()
	return a, nil
}
