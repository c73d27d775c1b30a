// Package logging builds the zap logger and carries a request-scoped one (with the request
// id on every line) in a context.
package logging

import (
	"context"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config is how a binary logs, read from the environment with the other settings
// (pkg/settings).
type Config struct {
	// Level is the lowest level written: debug, info, warn or error.
	Level zapcore.Level `env:"LATCHKEY_LOG_LEVEL" envDefault:"info"`
	// Format is json or console; empty means the binary's own default (console for
	// `make run`, json for the services).
	Format Format `env:"LATCHKEY_LOG_FORMAT"`
}

// Format is how log lines are written: JSON or Console.
type Format string

// The log formats.
const (
	JSON    Format = "json"
	Console Format = "console"
)

// New returns the logger s asks for at s.Level: JSON lines for production, or console
// lines for people (without stack traces). defaultFormat, the binary's own default,
// stands in for an empty s.Format; both empty mean JSON.
func New(s Config, defaultFormat Format) (*zap.Logger, error) {
	format := s.Format
	if format == "" {
		format = defaultFormat
	}
	cfg := zap.NewProductionConfig()
	if format == Console {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(s.Level)
	return cfg.Build()
}

type ctxKey struct{}

// With stores a logger in ctx.
func With(ctx context.Context, l *zap.Logger) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// From returns the logger of ctx, or a no-op logger.
func From(ctx context.Context) *zap.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*zap.Logger); ok {
		return l
	}
	return zap.NewNop()
}
