// Command ingest-gateway runs a Latchkey ingest gateway.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/latchkey/latchkey/pkg/logging"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ingest-gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, err := gateway.ConfigFromEnv()
	if err != nil {
		return err
	}
	log, err := logging.FromEnv("json")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	return gateway.Run(ctx, cfg, log)
}
