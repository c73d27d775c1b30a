// Command latchkey is Latchkey's command line (package cli): `latchkey dev` runs the whole
// suite on embedded defaults (`make run`); login, projects, keys, servers and audit call a
// running API; scan finds keys in files. `latchkey --help` lists everything.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/latchkey/latchkey/deploy/allinone/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	status := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(status)
}
