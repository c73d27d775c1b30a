// Command audit runs the Latchkey audit service; `audit migrate` applies its migrations
// and exits.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/services/audit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "audit:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := audit.ConfigFromEnv()
	if err != nil {
		return err
	}
	log, err := logging.FromEnv("json")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		applied, err := audit.Migrate(ctx, cfg)
		log.Info("migrated", zap.Strings("applied", applied))
		return err
	}
	return audit.Run(ctx, cfg, log)
}
