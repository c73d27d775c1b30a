// Command latchkey runs the whole suite in one process on embedded defaults (`make run`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/latchkey/latchkey/deploy/allinone"
	"github.com/latchkey/latchkey/pkg/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "latchkey:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	opts, err := allinone.OptionsFromEnv()
	if err != nil {
		return err
	}
	log, err := logging.FromEnv("console")
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	opts.OnListening = func(addrs map[string]string, token string) {
		names := make([]string, 0, len(addrs))
		for n := range addrs {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Println("Latchkey is up:")
		for _, n := range names {
			fmt.Printf("  %-20s %s\n", n, addrs[n])
		}
		fmt.Printf("  %-20s %s\n", "operator token", token)
		fmt.Println("REST API on http://" + addrs["rest"] + ", ingest on http://" + addrs["ingest-gateway http"] + "; GET /healthz on both. Ctrl-C stops everything.")
	}
	return allinone.Run(ctx, opts, log)
}
