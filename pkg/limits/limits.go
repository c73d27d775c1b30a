// Package limits holds the management API's token buckets: per client IP, per account key
// and per account, checked on every call after authentication. A refusal is 429
// rate_limited with the tier that refused and Retry-After.
package limits

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/callmeta"
	"github.com/latchkey/latchkey/pkg/envconfig"
	"github.com/latchkey/latchkey/pkg/ratelimit"
)

// Config holds the three limits.
type Config struct {
	// PerIP limits every caller's address (LATCHKEY_LIMIT_IP, "10/s:100": 10 per second,
	// burst 100).
	PerIP ratelimit.Limit
	// PerKey limits each account key (LATCHKEY_LIMIT_KEY, "100/s:1000").
	PerKey ratelimit.Limit
	// PerAccount limits each account, whoever calls for it (LATCHKEY_LIMIT_ACCOUNT,
	// "500/s:5000").
	PerAccount ratelimit.Limit
}

// ConfigFromEnv reads the limits; "off" disables one.
func ConfigFromEnv(r *envconfig.Reader) Config {
	return Config{
		PerIP:      parse(r, "LATCHKEY_LIMIT_IP", "10/s:100"),
		PerKey:     parse(r, "LATCHKEY_LIMIT_KEY", "100/s:1000"),
		PerAccount: parse(r, "LATCHKEY_LIMIT_ACCOUNT", "500/s:5000"),
	}
}

func parse(r *envconfig.Reader, key, def string) ratelimit.Limit {
	v := r.String(key, def)
	if v == "off" {
		return ratelimit.Limit{}
	}
	l, err := Parse(v)
	if err != nil {
		r.Fail(fmt.Errorf("%s=%q: %w", key, v, err))
		return ratelimit.Limit{}
	}
	return l
}

// Parse reads "<rate>/s:<burst>".
func Parse(v string) (ratelimit.Limit, error) {
	rate, burst, ok := strings.Cut(v, ":")
	rate, perSecond := strings.CutSuffix(rate, "/s")
	r, err1 := strconv.ParseFloat(rate, 64)
	b, err2 := strconv.Atoi(burst)
	if !ok || !perSecond || err1 != nil || err2 != nil || r <= 0 || b < 1 {
		return ratelimit.Limit{}, fmt.Errorf("want <rate>/s:<burst>, e.g. 10/s:100")
	}
	return ratelimit.Limit{PerSecond: r, Burst: b}, nil
}

// Limits checks calls against the buckets.
type Limits struct {
	cfg                 Config
	ips, keys, accounts *ratelimit.Limiter
}

// New returns limits with empty buckets; run Sweep to keep memory bounded.
func New(cfg Config) *Limits {
	return &Limits{cfg: cfg, ips: ratelimit.New(nil), keys: ratelimit.New(nil), accounts: ratelimit.New(nil)}
}

// Sweep drops full buckets every minute until ctx ends.
func (l *Limits) Sweep(ctx context.Context) error {
	for _, lim := range []*ratelimit.Limiter{l.ips, l.keys, l.accounts} {
		go lim.Run(ctx, time.Minute)
	}
	<-ctx.Done()
	return nil
}

// Unary is the interceptor. The operator (and the services that call with its token) is
// not limited: gateways must not be throttled by the management API's budgets.
func (l *Limits) Unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	p := auth.From(ctx)
	if p != nil && p.Kind == auth.KindOperator {
		return next(ctx, req)
	}
	if err := l.take(l.ips, "ip", callmeta.ClientIP(ctx), l.cfg.PerIP); err != nil {
		return nil, err
	}
	if p != nil && p.KeyID != "" {
		if err := l.take(l.keys, "key", p.KeyID, l.cfg.PerKey); err != nil {
			return nil, err
		}
	}
	if p != nil && p.AccountID != "" {
		if err := l.take(l.accounts, "account", p.AccountID, l.cfg.PerAccount); err != nil {
			return nil, err
		}
	}
	return next(ctx, req)
}

func (l *Limits) take(lim *ratelimit.Limiter, tier, key string, limit ratelimit.Limit) error {
	if key == "" {
		return nil
	}
	if ok, retry := lim.Allow(key, limit); !ok {
		return (&apierr.Error{Code: apierr.RateLimited, Message: "too many requests: the " + tier + " limit is reached", RetryAfter: retry}).With("tier", tier)
	}
	return nil
}
