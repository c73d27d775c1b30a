// Package logging builds the zap logger and carries a request-scoped one (with the request
// id on every line) in a context.
package logging

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON production logger at level ("debug", "info", "warn", "error"), or a
// console logger when dev is set.
func New(level string, dev bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	cfg := zap.NewProductionConfig()
	if dev {
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
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

// FromEnv builds the logger from LATCHKEY_LOG_LEVEL (default info) and LATCHKEY_LOG_FORMAT
// (json or console; defaultFormat when unset).
func FromEnv(defaultFormat string) (*zap.Logger, error) {
	level, format := os.Getenv("LATCHKEY_LOG_LEVEL"), os.Getenv("LATCHKEY_LOG_FORMAT")
	if level == "" {
		level = "info"
	}
	if format == "" {
		format = defaultFormat
	}
	if format != "json" && format != "console" {
		return nil, fmt.Errorf("LATCHKEY_LOG_FORMAT=%q must be json or console", format)
	}
	l, err := New(level, format == "console")
	if err != nil {
		return nil, fmt.Errorf("LATCHKEY_LOG_LEVEL=%q: %w", level, err)
	}
	return l, nil
}
