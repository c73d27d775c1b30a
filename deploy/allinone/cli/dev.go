package cli

import (
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"

	"github.com/latchkey/latchkey/deploy/allinone"
	"github.com/latchkey/latchkey/pkg/logging"
)

func (a *app) devCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "dev",
		Short: "Run the whole suite on this machine on embedded defaults (make run)",
		Long: `dev runs accounts, keys, audit and the ingest gateway in one process, with their REST
bridge on 127.0.0.1:8080 and ingest on 127.0.0.1:4318 (OTLP/HTTP) and 127.0.0.1:4317
(OTLP/gRPC), until Ctrl-C or SIGTERM. It uses DATABASE_URL, else the Postgres on
127.0.0.1:5432, else a throwaway cluster; NATS_URL, else a NATS server of its own. The
README's "Two commands" and "Settings" give every variable.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := allinone.OptionsFromEnv()
			if err != nil {
				return err
			}
			opts.OnListening = func(addrs map[string]string, token string) { printAddresses(a.stdout, addrs, token) }
			log, err := logging.New(opts.Log, "console")
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			return allinone.Run(cmd.Context(), opts, log)
		},
	}
}

// printAddresses tells whoever ran `latchkey dev` where everything is, and the operator
// token when it was generated for this run; a token from LATCHKEY_OPERATOR_TOKEN is not
// repeated.
func printAddresses(w io.Writer, addrs map[string]string, generatedToken string) {
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	_, _ = fmt.Fprintln(w, "Latchkey is up:")
	for _, n := range names {
		_, _ = fmt.Fprintf(w, "  %-20s %s\n", n, addrs[n])
	}
	if generatedToken == "" {
		generatedToken = "(LATCHKEY_OPERATOR_TOKEN)" //nolint:gosec // where the token came from, not a token
	}
	_, _ = fmt.Fprintf(w, "  %-20s %s\n", "operator token", generatedToken)
	_, _ = fmt.Fprintln(w, "REST API on http://"+addrs["rest"]+", ingest on http://"+addrs["ingest-gateway http"]+"; GET /healthz on both. Ctrl-C stops everything.")
}
