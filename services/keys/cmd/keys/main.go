// Command keys runs the Latchkey keys service; `keys migrate` applies its migrations and exits.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/services/keys"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keys:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := keys.ConfigFromEnv()
	if err != nil {
		return err
	}
	log, err := logging.FromEnv("json")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		applied, err := keys.Migrate(ctx, cfg)
		log.Info("migrated", zap.Strings("applied", applied))
		return err
	}
	return keys.Run(ctx, cfg, log)
}
