// Command accounts runs the Latchkey accounts service; `accounts migrate` applies its
// migrations and exits.
package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/services/accounts"
)

func main() {
	cfg, err := accounts.ConfigFromEnv()
	server.Main(server.Command{
		Name:     "accounts",
		Log:      cfg.Log,
		Serve:    func(ctx context.Context, log *zap.Logger) error { return accounts.Run(ctx, cfg, log) },
		Migrate:  func(ctx context.Context) ([]string, error) { return accounts.Migrate(ctx, cfg) },
		Settings: func() ([]settings.Var, error) { return settings.Describe(accounts.Config.Validate) },
	}, err)
}
