// Command accounts runs the Latchkey accounts service; `accounts migrate` only applies its
// database migrations.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/services/accounts"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "accounts:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := accounts.ConfigFromEnv()
	if err != nil {
		return fmt.Errorf("bad configuration: %w", err)
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat == "console")
	if err != nil {
		return fmt.Errorf("LATCHKEY_LOG_LEVEL: %w", err)
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch {
	case len(args) == 1 && args[0] == "migrate":
		applied, err := accounts.Migrate(ctx, cfg)
		if err != nil {
			return err
		}
		log.Info("migrations applied", zap.Strings("versions", applied))
		return nil
	case len(args) == 0:
		return accounts.Run(ctx, cfg, log)
	default:
		return fmt.Errorf("usage: accounts [migrate]")
	}
}
