package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/buildinfo"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/settings"
)

// Command is what a service binary does: serve, and (for services with a database) apply
// migrations. Both get a context that ends on SIGINT or SIGTERM.
type Command struct {
	// Name is the binary's name, for messages.
	Name string
	// Serve runs the service until ctx ends.
	Serve func(ctx context.Context, log *zap.Logger) error
	// Migrate applies the service's migrations and returns the versions applied; nil for
	// a service without a database.
	Migrate func(ctx context.Context) ([]string, error)
	// Settings, if set, lists the variables the binary reads (settings.Describe), for
	// `<name> settings`.
	Settings func() ([]settings.Var, error)
	// Log is how to log, as the binary's configuration read it (logging.Config).
	Log logging.Config
	// LogFormat is the binary's default for an empty Log.Format: json (when empty too),
	// or console for people.
	LogFormat logging.Format
}

// Main runs `<name>` (serve) or `<name> migrate`, configured by the environment; a
// configuration error (configErr) or a failure prints the reason and exits 1.
// `<name> --version` prints buildinfo.Line and exits 0 whatever the environment holds, so
// an image's binary answers it with no configuration at all. So does `<name> settings`
// (when Settings is set): it prints, as a JSON array of settings.Var, every variable the
// binary reads, its default, and whether it is required to serve; the Kubernetes
// manifests' test reads it (deploy/kubernetes).
func Main(c Command, configErr error) {
	if err := c.main(configErr, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", c.Name, err)
		os.Exit(1)
	}
}

func (c Command) main(configErr error, args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		_, err := fmt.Fprintln(stdout, buildinfo.Line(c.Name))
		return err
	}
	if len(args) == 1 && args[0] == "settings" && c.Settings != nil {
		vars, err := c.Settings()
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(vars)
	}
	if configErr != nil {
		return configErr
	}
	log, err := logging.New(c.Log, c.LogFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case len(args) == 0:
		return c.Serve(ctx, log)
	case len(args) == 1 && args[0] == "migrate" && c.Migrate != nil:
		applied, err := c.Migrate(ctx)
		if err != nil {
			return err
		}
		log.Info("migrations applied", zap.Strings("versions", applied))
		return nil
	case c.Migrate != nil:
		return fmt.Errorf("usage: %s [migrate | settings | --version]", c.Name)
	default:
		return fmt.Errorf("usage: %s [settings | --version] (it takes no other arguments)", c.Name)
	}
}
