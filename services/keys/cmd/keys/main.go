// Command keys runs the Latchkey keys service; `keys migrate` applies its migrations and exits.
package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/services/keys"
)

func main() {
	cfg, err := keys.ConfigFromEnv()
	server.Main(server.Command{
		Name:     "keys",
		Log:      cfg.Log,
		Serve:    func(ctx context.Context, log *zap.Logger) error { return keys.Run(ctx, cfg, log) },
		Migrate:  func(ctx context.Context) ([]string, error) { return keys.Migrate(ctx, cfg) },
		Settings: func() ([]settings.Var, error) { return settings.Describe(keys.Config.Validate) },
	}, err)
}
