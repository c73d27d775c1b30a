// Command audit runs the Latchkey audit service; `audit migrate` applies its migrations and
// exits.
package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/services/audit"
)

func main() {
	cfg, err := audit.ConfigFromEnv()
	server.Main(server.Command{
		Name:     "audit",
		Log:      cfg.Log,
		Serve:    func(ctx context.Context, log *zap.Logger) error { return audit.Run(ctx, cfg, log) },
		Migrate:  func(ctx context.Context) ([]string, error) { return audit.Migrate(ctx, cfg) },
		Settings: func() ([]settings.Var, error) { return settings.Describe(audit.Config.Validate) },
	}, err)
}
