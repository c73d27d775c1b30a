// Command cluster runs Latchkey on a 3-node NATS cluster on this machine (package
// cluster): `make cluster`. It takes the lock of <dir> (one cluster at a time), builds the
// binaries, starts every process with the secrets kept in <dir>, prints the addresses
// once every process is ready, writes them to <dir>/topology.json, and stops everything
// (removing topology.json) on Ctrl-C or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/latchkey/latchkey/deploy/cluster"
)

func main() {
	if err := run(); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "cluster: ") {
			msg = "cluster: " + msg // package cluster's errors say so already
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("root", ".", "the repository")
	dir := flag.String("dir", ".cache/cluster", "binaries (bin/), NATS stores (nats/), logs (logs/), secrets, lock and topology.json")
	ldflags := flag.String("ldflags", "", "go build -ldflags (the Makefile's LDFLAGS)")
	dbName := flag.String("database", "latchkey_cluster", "database made on the local Postgres when DATABASE_URL is unset")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	unlock, err := cluster.Lock(abs)
	if err != nil {
		return err
	}
	defer unlock()
	bin := filepath.Join(abs, "bin")
	fmt.Println("building into", bin)
	if err := cluster.Build(ctx, *root, bin, *ldflags); err != nil {
		return err
	}
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		if dbURL, err = cluster.Database(ctx, cluster.LocalPostgres, *dbName); err != nil {
			return err
		}
	}
	fmt.Println("starting 3 NATS nodes, 2 accounts, 2 keys, 1 audit, 3 gateways; logs in", filepath.Join(abs, "logs"))
	c, err := cluster.Start(ctx, cluster.Config{BinDir: bin, Dir: abs, DatabaseURL: dbURL, Env: []string{"LATCHKEY_LOG_FORMAT=json"}})
	if err != nil {
		return err
	}
	defer c.Stop()
	w := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', 0)
	_, _ = fmt.Fprintln(w, "NAME\tSERVICE\tPID\tHTTP\tGRPC\tNATS")
	for _, p := range c.Processes() {
		_, _ = fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", p.Name, p.Service, p.PID, p.Addresses.HTTP, p.Addresses.GRPC, p.Addresses.NATS)
	}
	_ = w.Flush()
	fmt.Printf("\nNATS_URL=%s\nLATCHKEY_OPERATOR_TOKEN=%s\ntopology: %s\n"+
		"ready: every /healthz answers 200, every service reaches accounts and keys; Ctrl-C or SIGTERM stops every process\n", c.NATSURL, c.OperatorToken, c.Topology())
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}
