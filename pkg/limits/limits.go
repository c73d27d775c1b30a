// Package limits holds the management API's token buckets: per client IP, per account key
// and per account, checked on every call after authentication. A refusal is 429
// rate_limited with the tier that refused and Retry-After.
package limits

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/callmeta"
	"github.com/latchkey/latchkey/pkg/ratelimit"
)

// Config holds the three limits, each "<rate>/s:<burst>" or "off" (settings parses them).
type Config struct {
	// PerIP limits every caller's address ("10/s:100": 10 per second, burst 100).
	PerIP ratelimit.Limit `env:"LATCHKEY_LIMIT_IP" envDefault:"10/s:100"`
	// PerKey limits each account key.
	PerKey ratelimit.Limit `env:"LATCHKEY_LIMIT_KEY" envDefault:"100/s:1000"`
	// PerAccount limits each account, whoever calls for it.
	PerAccount ratelimit.Limit `env:"LATCHKEY_LIMIT_ACCOUNT" envDefault:"500/s:5000"`
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
	if err := take(l.ips, "ip", callmeta.ClientIP(ctx), l.cfg.PerIP); err != nil {
		return nil, err
	}
	if p != nil && p.KeyID != "" {
		if err := take(l.keys, "key", p.KeyID, l.cfg.PerKey); err != nil {
			return nil, err
		}
	}
	if p != nil && p.AccountID != "" {
		if err := take(l.accounts, "account", p.AccountID, l.cfg.PerAccount); err != nil {
			return nil, err
		}
	}
	return next(ctx, req)
}

func take(lim *ratelimit.Limiter, tier, key string, limit ratelimit.Limit) error {
	if key == "" {
		return nil
	}
	if ok, retry := lim.Allow(key, limit); !ok {
		return (&apierr.Error{Code: apierr.RateLimited, Message: "too many requests: the " + tier + " limit is reached", RetryAfter: retry}).With("tier", tier)
	}
	return nil
}

// Bucket is a per-client-IP token bucket of its own, for a call that anyone may make with
// no credentials and that must be limited more tightly than the rest (minting anonymous
// keys, LATCHKEY_LIMIT_ANONYMOUS). It is taken in addition to the buckets of Unary; a
// refusal is the same 429 rate_limited with tier "ip". Run Sweep to keep memory bounded.
type Bucket struct {
	lim   *ratelimit.Limiter
	limit ratelimit.Limit
}

// NewBucket returns a bucket per client IP under limit; a zero limit never refuses.
func NewBucket(limit ratelimit.Limit) *Bucket {
	return &Bucket{lim: ratelimit.New(nil), limit: limit}
}

// Take takes one token from the bucket of the caller's address (callmeta.ClientIP).
func (b *Bucket) Take(ctx context.Context) error {
	return take(b.lim, "ip", callmeta.ClientIP(ctx), b.limit)
}

// Sweep drops full buckets every minute until ctx ends.
func (b *Bucket) Sweep(ctx context.Context) error {
	b.lim.Run(ctx, time.Minute)
	return nil
}
