// Command loadgen measures ingest throughput: authenticated OTLP/HTTP trace exports of a
// chosen size, from keep-alive workers, for a fixed time, printed as one line per run.
//
//	loadgen -bare                                   the net/http baseline alone
//	loadgen -url http://127.0.0.1:4318/v1/traces -key lk_...        the gateway alone
//	loadgen -bare -url ... -key ...                 both, baseline first, in one run
//
// Point it only at addresses on this machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/latchkey/latchkey/pkg/buildinfo"
	"github.com/latchkey/latchkey/services/ingest-gateway/loadgen"
)

func main() {
	url := flag.String("url", "", "target URL, e.g. http://127.0.0.1:4318/v1/traces")
	keys := flag.String("key", "", "API key, sent as Authorization: Bearer <key>; several, comma-separated, are spread over the workers; empty sends none")
	concurrency := flag.Int("concurrency", loadgen.DefaultConcurrency, "workers, each with a keep-alive connection")
	duration := flag.Duration("duration", loadgen.DefaultDuration, "how long to send, per run")
	size := flag.Int("size", 1024, "request body size in bytes (an OTLP traces export)")
	bare := flag.Bool("bare", false, "also run against a bare net/http server started in process (the baseline)")
	version := flag.Bool("version", false, "print the version and revision, and exit")
	flag.Parse()
	if *version {
		fmt.Println(buildinfo.Line("loadgen"))
		return
	}

	if *url == "" && !*bare {
		fmt.Fprintln(os.Stderr, "loadgen: give -url, -bare, or both")
		flag.Usage()
		os.Exit(2)
	}
	// Ctrl-C ends the run early; what was measured so far is still printed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *url, *keys, *concurrency, *duration, *size, *bare); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, url, keys string, concurrency int, duration time.Duration, size int, bare bool) error {
	cfg := loadgen.Config{
		Keys:        strings.FieldsFunc(keys, func(r rune) bool { return r == ',' }),
		Body:        loadgen.TracesBody(size),
		Concurrency: concurrency,
		Duration:    duration,
	}
	// The settings go to stderr so that stdout holds only result lines.
	fmt.Fprintf(os.Stderr, "loadgen: body=%dB concurrency=%d duration=%v\n", len(cfg.Body), concurrency, duration)
	if bare {
		bareURL, stopBare, err := loadgen.Bare()
		if err != nil {
			return err
		}
		c := cfg
		c.URL = bareURL
		res, err := loadgen.Run(ctx, c)
		stopBare()
		fmt.Printf("bare   %v\n", res)
		if err != nil {
			return fmt.Errorf("bare: %w", err)
		}
	}
	if url != "" {
		cfg.URL = url
		res, err := loadgen.Run(ctx, cfg)
		fmt.Printf("target %v\n", res)
		if err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	return nil
}
