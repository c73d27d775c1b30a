// Command ingest-gateway runs a Latchkey ingest gateway.
package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
)

func main() {
	cfg, err := gateway.ConfigFromEnv()
	server.Main(server.Command{
		Name:     "ingest-gateway",
		Log:      cfg.Log,
		Serve:    func(ctx context.Context, log *zap.Logger) error { return gateway.Run(ctx, cfg, log) },
		Settings: func() ([]settings.Var, error) { return settings.Describe(gateway.Config.Validate) },
	}, err)
}
