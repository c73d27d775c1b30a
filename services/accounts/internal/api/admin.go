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

// maxReasonLen bounds a suspension reason, in characters.
const maxReasonLen = 500

// SetPlan moves an account to the free or pro plan (operator only).
func (s adminServer) SetPlan(ctx context.Context, req *accountsv1.SetPlanRequest) (*accountsv1.SetPlanResponse, error) {
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	if err := checkID("account_id", ids.Account, req.GetAccountId()); err != nil {
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
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	if err := checkID("account_id", ids.Account, req.GetAccountId()); err != nil {
		return nil, err
	}
	reason := strings.TrimSpace(req.GetReason())
	if utf8.RuneCountInString(reason) > maxReasonLen {
		return nil, invalid("reason must be at most %d characters", maxReasonLen)
	}
	a, err := s.cfg.Store.Suspend(ctx, req.GetAccountId(), reason, now(), func(a store.Account) *eventsv1.Event {
		ev := newEvent(ctx, a.ID)
		ev.Payload = &eventsv1.Event_AccountSuspended{AccountSuspended: &eventsv1.AccountSuspended{Reason: reason}}
		return ev
	})
	if err != nil {
		return nil, storeErr(err, errAccountNotFound)
	}
	s.cfg.Notify()
	return &accountsv1.SuspendAccountResponse{Account: accountPB(a)}, nil
}
