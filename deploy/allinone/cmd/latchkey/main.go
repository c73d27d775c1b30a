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
	// The first signal asks the command to stop (dev drains, tail ends); a second one ends
	// the process at once: a command blocked in a system call (scan opening a FIFO no one
	// writes to) never sees the first.
	go func() { <-ctx.Done(); stop() }()
	status := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(status)
}
