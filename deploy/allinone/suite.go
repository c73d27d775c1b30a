// Package allinone runs the whole Latchkey suite in one process for `make run` and the
// end-to-end tests: every service on its own gRPC port, one REST listener for the
// management services, the ingest gateway on its own ports (4318 HTTP, 4317 OTLP/gRPC),
// an embedded NATS server and whatever Postgres can be found.
package allinone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/devsecret"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/tlsfiles"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// allServices are the services the suite can run.
var allServices = []string{"accounts", "keys", "ingest-gateway", "audit"}

// Options configures the suite. OptionsFromEnv reads it from the environment: each
// field's tags name its variable and default. The services' own settings
// (ACCOUNTS_GRPC_ADDR, KEYS_GRPC_ADDR, LATCHKEY_KEY_PROFILE, …) are read from the
// environment by each service.
type Options struct {
	// HTTPAddr is the REST listener for every service.
	HTTPAddr string `env:"LATCHKEY_HTTP_ADDR" envDefault:"127.0.0.1:8080"`
	// DatabaseURL is the Postgres to use; found or made when empty.
	DatabaseURL string `env:"DATABASE_URL"`
	// NATSURL is the NATS to use; an embedded server when empty.
	NATSURL string `env:"NATS_URL"`
	// OperatorToken is the platform team's token; generated when empty.
	OperatorToken string `env:"LATCHKEY_OPERATOR_TOKEN"`
	// Pepper keys stored key hashes; when empty, one is generated once and kept in
	// PepperFile so keys survive restarts.
	Pepper     string `env:"LATCHKEY_PEPPER"`
	PepperFile string `env:"LATCHKEY_PEPPER_FILE" envDefault:".cache/dev-pepper"`
	// Log is how the suite logs (console lines unless LATCHKEY_LOG_FORMAT says json).
	Log logging.Config
	// SigningKeyFile keeps the audit checkpoint signing key Run generates when neither
	// AUDIT_SIGNING_KEY nor OperatorToken is given: the key derived from a token generated
	// anew on every start would change with it, and every checkpoint signed before a
	// restart would then fail verification. Empty: the derived key is used.
	SigningKeyFile string
	// OnListening is told every bound address once all listen, and the operator token
	// when Run generated it (for the developer at the terminal, `make run`); "" when
	// OperatorToken was given: the operator has it, and it goes to no output.
	OnListening func(addrs map[string]string, generatedToken string)
	// Services names the services to run (comma-separated: accounts, keys,
	// ingest-gateway, audit); all when empty.
	Services []string `env:"LATCHKEY_SERVICES"`
	// Configure, when set, adjusts the services' configurations last (tests use it).
	Configure func(a *accounts.Config, k *keys.Config, g *gateway.Config, au *audit.Config)
}

// OptionsFromEnv reads the suite's options, reporting every bad value at once.
func OptionsFromEnv() (Options, error) {
	var o Options
	errs := []error{settings.Parse(&o)}
	// Beside the pepper, and like it a development convenience of `make run`.
	o.SigningKeyFile = filepath.Join(".cache", "dev-audit-signing-key")
	for i, name := range o.Services {
		name = strings.TrimSpace(name)
		if !slices.Contains(allServices, name) {
			errs = append(errs, fmt.Errorf("LATCHKEY_SERVICES: unknown service %q; known: %s", name, strings.Join(allServices, ", ")))
		}
		o.Services[i] = name
	}
	return o, errors.Join(errs...)
}

// Run starts everything and serves until ctx ends.
func Run(ctx context.Context, o Options, log *zap.Logger) error {
	dbURL, stopPG, err := resolvePostgres(ctx, o.DatabaseURL, log)
	if err != nil {
		return err
	}
	defer stopPG()
	natsURL := o.NATSURL
	if natsURL == "" {
		u, stop, err := embeddedNATS()
		if err != nil {
			return err
		}
		defer stop()
		natsURL = u
	}
	token, generated := o.OperatorToken, ""
	if token == "" {
		token = devsecret.NewOperatorToken()
		generated = token
	}
	pepper, err := pepperOf(o)
	if err != nil {
		return err
	}

	acfg, err := accounts.ConfigFromEnv()
	if err != nil {
		return err
	}
	kcfg, err := keys.ConfigFromEnv()
	if err != nil {
		return err
	}
	gcfg, err := gateway.ConfigFromEnv()
	if err != nil {
		return err
	}
	aucfg, err := audit.ConfigFromEnv()
	if err != nil {
		return err
	}
	acfg.DatabaseURL, kcfg.DatabaseURL = dbURL, dbURL
	acfg.NATSURL, kcfg.NATSURL = natsURL, natsURL
	acfg.OperatorToken, kcfg.OperatorToken = token, token
	acfg.HTTPAddr, kcfg.HTTPAddr = "", ""
	acfg.KeysAddr = kcfg.GRPCAddr
	kcfg.AccountsAddr = acfg.GRPCAddr
	kcfg.Pepper = pepper
	gcfg.NATSURL, gcfg.OperatorToken = natsURL, token
	aucfg.DatabaseURL, aucfg.NATSURL, aucfg.OperatorToken, aucfg.HTTPAddr = dbURL, natsURL, token, ""
	if aucfg.SigningKey == "" && generated != "" && o.SigningKeyFile != "" {
		if aucfg.SigningKey, err = devsecret.SigningKey(o.SigningKeyFile); err != nil {
			return err
		}
	}
	if o.Configure != nil {
		o.Configure(&acfg, &kcfg, &gcfg, &aucfg)
	}
	gcfg.KeysAddr, gcfg.Namespace = kcfg.GRPCAddr, kcfg.Namespace
	aucfg.AccountsAddr, aucfg.KeysAddr, aucfg.Namespace = acfg.GRPCAddr, kcfg.GRPCAddr, kcfg.Namespace
	// Before any service migrates its schema or creates its streams.
	listens := []string{"LATCHKEY_HTTP_ADDR", o.HTTPAddr}
	for _, svc := range []struct{ name, grpcVar, grpc, httpVar, http string }{
		{"accounts", "ACCOUNTS_GRPC_ADDR", acfg.GRPCAddr, "ACCOUNTS_HTTP_ADDR", acfg.HTTPAddr},
		{"keys", "KEYS_GRPC_ADDR", kcfg.GRPCAddr, "KEYS_HTTP_ADDR", kcfg.HTTPAddr},
		{"ingest-gateway", "GATEWAY_GRPC_ADDR", gcfg.GRPCAddr, "GATEWAY_HTTP_ADDR", gcfg.HTTPAddr},
		{"audit", "AUDIT_GRPC_ADDR", aucfg.GRPCAddr, "AUDIT_HTTP_ADDR", aucfg.HTTPAddr},
	} {
		if o.runs(svc.name) {
			listens = append(listens, svc.grpcVar, svc.grpc, svc.httpVar, svc.http)
		}
	}
	if err := checkFree(listens...); err != nil {
		return err
	}

	builders := []struct {
		name  string
		build func() (*server.Unit, error)
	}{
		{"accounts", func() (*server.Unit, error) { return accounts.New(ctx, acfg, log) }},
		{"keys", func() (*server.Unit, error) { return keys.New(ctx, kcfg, log) }},
		{"ingest-gateway", func() (*server.Unit, error) {
			gw, err := gateway.New(ctx, gcfg, log)
			if err != nil {
				return nil, err
			}
			return gw.Unit, nil
		}},
		{"audit", func() (*server.Unit, error) { return audit.New(ctx, aucfg, log) }},
	}
	var units []*server.Unit
	closeAll := func() {
		for i := len(units) - 1; i >= 0; i-- {
			units[i].Close()
		}
	}
	for _, b := range builders {
		if !o.runs(b.name) {
			continue
		}
		u, err := b.build()
		if err != nil {
			closeAll()
			return fmt.Errorf("%s: %w", b.name, err)
		}
		units = append(units, u)
	}
	return server.Run(ctx, server.RunConfig{
		Logger:   log,
		HTTPAddr: o.HTTPAddr,
		Grace:    acfg.ShutdownGrace,
		TLS:      sharedTLS(units),
		OnListening: func(addrs map[string]string) {
			addrs["nats"] = natsURL
			if o.OnListening != nil {
				o.OnListening(addrs, generated)
			}
		},
	}, units...)
}

// checkFree fails when an address the suite is to listen on is taken (another
// `make run`, most often), naming each with its variable, so that the suite stops before
// it migrates a database or creates streams. pairs are variable and address; an empty
// address is not listened on.
func checkFree(pairs ...string) error {
	var taken []error
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		l, err := net.Listen("tcp", pairs[i+1])
		if err != nil {
			taken = append(taken, fmt.Errorf("%s=%s: %w", pairs[i], pairs[i+1], err))
			continue
		}
		_ = l.Close()
	}
	if len(taken) > 0 {
		return fmt.Errorf("cannot listen (is another `make run` or `latchkey dev` running? stop it, or set these variables): %w", errors.Join(taken...))
	}
	return nil
}

// sharedTLS is what the shared REST listener serves: every service read the same
// LATCHKEY_TLS_* files (none by default, plaintext).
func sharedTLS(units []*server.Unit) *tlsfiles.Files {
	for _, u := range units {
		if u.TLS != nil {
			return u.TLS
		}
	}
	return nil
}

// runs reports whether the suite runs the named service.
func (o Options) runs(name string) bool {
	return len(o.Services) == 0 || slices.Contains(o.Services, name)
}

func pepperOf(o Options) (string, error) {
	if o.Pepper != "" {
		return o.Pepper, nil
	}
	return devsecret.Pepper(o.PepperFile)
}
