// Command latchkey runs the whole suite in one process on embedded defaults (`make run`).
package main

import (
	"context"
	"fmt"
	"sort"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/deploy/allinone"
	"github.com/latchkey/latchkey/pkg/server"
)

func main() {
	opts, err := allinone.OptionsFromEnv()
	opts.OnListening = printAddresses
	server.Main(server.Command{
		Name:      "latchkey",
		Serve:     func(ctx context.Context, log *zap.Logger) error { return allinone.Run(ctx, opts, log) },
		Log:       opts.Log,
		LogFormat: "console",
	}, err)
}

// printAddresses tells whoever ran `make run` where everything is, and the operator token
// when it was generated for this run; a token from LATCHKEY_OPERATOR_TOKEN is not repeated.
func printAddresses(addrs map[string]string, generatedToken string) {
	names := make([]string, 0, len(addrs))
	for n := range addrs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Println("Latchkey is up:")
	for _, n := range names {
		fmt.Printf("  %-20s %s\n", n, addrs[n])
	}
	if generatedToken != "" {
		fmt.Printf("  %-20s %s\n", "operator token", generatedToken)
	} else {
		fmt.Printf("  %-20s %s\n", "operator token", "(LATCHKEY_OPERATOR_TOKEN)")
	}
	fmt.Println("REST API on http://" + addrs["rest"] + ", ingest on http://" + addrs["ingest-gateway http"] + "; GET /healthz on both. Ctrl-C stops everything.")
}
