// Package retention deletes audit events past their account's plan's retention period: a
// periodic job that asks the accounts service for each account's plan and calls
// audit.apply_retention, the one way events are ever deleted.
package retention

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"

	"github.com/latchkey/latchkey/pkg/periodic"
)

// PlanPro is the plan whose events are kept for the Pro period; every other plan, an
// unknown or deleted account and events with no account get the Free period.
const PlanPro = "pro"

const lookupTimeout = 5 * time.Second

var deletedTotal = promauto.NewCounter(prometheus.CounterOpts{
	Name: "latchkey_audit_events_deleted_total",
	Help: "Audit events deleted by retention.",
})

// Store is what the job needs of the audit store.
type Store interface {
	ChainAccounts(ctx context.Context) ([]string, error)
	ApplyRetention(ctx context.Context, accountID string, olderThan time.Time) (int64, error)
}

// Job applies retention every Interval.
type Job struct {
	Store    Store
	Accounts accountsv1.InternalServiceClient
	// Operator is the operator token, sent to the accounts service.
	Operator string
	Interval time.Duration
	// Free and Pro are how long events are kept on each plan.
	Free, Pro time.Duration
	Log       *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Run applies retention at once and then every Interval until ctx ends. A failed pass is
// logged and tried again at the next tick.
func (j *Job) Run(ctx context.Context) error {
	return periodic.Now(ctx, j.Interval, func(ctx context.Context) {
		if deleted, err := j.Pass(ctx); err != nil && ctx.Err() == nil {
			j.Log.Warn("audit retention pass failed", zap.Error(err))
		} else if deleted > 0 {
			j.Log.Info("audit retention", zap.Int64("deleted", deleted))
		}
	})
}

// Pass applies retention to every account with a chain once and returns how many events
// it deleted. An account whose plan cannot be learnt (the accounts service is down) is
// skipped, not treated as free: a pro account's events are never cut short.
func (j *Job) Pass(ctx context.Context) (int64, error) {
	accounts, err := j.Store.ChainAccounts(ctx)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	if j.Now != nil {
		now = j.Now()
	}
	var total int64
	for _, a := range accounts {
		keep, ok := j.period(ctx, a)
		if !ok {
			continue
		}
		n, err := j.Store.ApplyRetention(ctx, a, now.Add(-keep))
		if err != nil {
			return total, err
		}
		total += n
		deletedTotal.Add(float64(n))
	}
	return total, nil
}

// period is how long the account's events are kept; ok is false when that is unknown now.
func (j *Job) period(ctx context.Context, accountID string) (time.Duration, bool) {
	if accountID == "" {
		return j.Free, true
	}
	cctx, cancel := context.WithTimeout(auth.OutgoingBearer(ctx, j.Operator), lookupTimeout)
	defer cancel()
	resp, err := j.Accounts.LookupAccount(cctx, &accountsv1.LookupAccountRequest{AccountId: accountID})
	if err != nil {
		switch remoteCode(err) {
		case apierr.NotFound, apierr.InvalidArgument: // deleted, or never an account id
			return j.Free, true
		}
		if ctx.Err() == nil {
			j.Log.Warn("audit retention: account plan unknown; skipped this pass",
				zap.String("account_id", accountID), zap.Error(err))
		}
		return 0, false
	}
	if resp.GetAccount().GetPlan() == PlanPro {
		return j.Pro, true
	}
	return j.Free, true
}

// remoteCode is the Latchkey error code the accounts service answered with, or "" for
// anything else (a transport failure, or a bare status from something that is not a
// Latchkey service), which must not be mistaken for "no such account".
func remoteCode(err error) apierr.Code {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == apierr.Domain {
			return apierr.Code(info.GetReason())
		}
	}
	return ""
}
