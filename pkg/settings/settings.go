// Package settings declares, once, the settings that several Latchkey services share
// (namespace, operator token, NATS, Postgres, the other services' addresses, shutdown
// grace, logging) and reads any configuration struct from the environment.
//
// A setting is a struct field whose tags name its variable and default:
//
//	SessionTTL time.Duration `env:"LATCHKEY_SESSION_TTL" envDefault:"24h"`
//
// and its doc comment says what it means. A service's Config embeds the shared structs
// (Common, Postgres, AccountsPeer, KeysPeer) beside its own fields and calls Parse; its
// Validate calls theirs. Reading is github.com/caarlos0/env: an unset or empty variable
// takes the default, and every value that does not parse is reported at once, by
// variable. Values are parsed here (durations, never negative; numbers; booleans; log
// formats), each error saying what was wanted, or by their type's own UnmarshalText
// (ratelimit.Limit: "<rate>/s:<burst>" or "off"; zapcore.Level).
package settings

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/natsx"
)

// Common are the settings every service reads.
type Common struct {
	// Namespace prefixes every NATS subject and stream: 1 to 64 letters, digits, '_' or
	// '-' (natsx.DefaultNamespace by default), so one NATS can serve several deployments.
	Namespace string `env:"LATCHKEY_NAMESPACE" envDefault:"latchkey"`
	// OperatorToken authenticates the platform team's admin calls and the services' calls
	// to each other; auth.CheckOperatorToken holds its bounds. Required to serve, not to
	// migrate.
	OperatorToken string `env:"LATCHKEY_OPERATOR_TOKEN"`
	// NATSURL is the NATS server with JetStream; a comma-separated list for a cluster.
	NATSURL string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// StreamReplicas is how many NATS servers keep each of the service's JetStream streams
	// (natsx.Replicated): 1 to natsx.MaxReplicas; 1 on a single nats-server, 3 on a cluster
	// of three or more. 0 (a Config built in code) counts as 1.
	StreamReplicas int `env:"LATCHKEY_STREAM_REPLICAS" envDefault:"1"`
	// StreamWait bounds how long a starting service waits for its streams
	// (natsx.Keeper.EnsureWithin) before it gives up with an error; 0 (a Config built in
	// code) is natsx.DefaultStreamWait.
	StreamWait time.Duration `env:"LATCHKEY_STREAM_WAIT" envDefault:"1m"`
	// ShutdownGrace is how long in-flight calls get to finish after SIGTERM; not negative.
	ShutdownGrace time.Duration `env:"LATCHKEY_SHUTDOWN_GRACE" envDefault:"10s"`
	// Log is how the binary logs.
	Log logging.Config
}

// Validate reports every shared setting that cannot work, at once. It never echoes the
// operator token.
func (c Common) Validate() error {
	var errs []error
	if !natsx.ValidToken(c.Namespace) {
		errs = append(errs, fmt.Errorf("LATCHKEY_NAMESPACE=%q must be 1 to %d letters, digits, '_' or '-' (one NATS subject token)", c.Namespace, natsx.MaxTokenLen))
	}
	if err := auth.CheckOperatorToken(c.OperatorToken); err != nil {
		errs = append(errs, err)
	}
	if c.NATSURL == "" {
		errs = append(errs, errors.New("NATS_URL is required"))
	}
	if c.StreamReplicas < 0 || c.StreamReplicas > natsx.MaxReplicas {
		errs = append(errs, fmt.Errorf("LATCHKEY_STREAM_REPLICAS=%d must be 1 to %d", c.StreamReplicas, natsx.MaxReplicas))
	}
	if c.StreamWait < 0 {
		errs = append(errs, errors.New("LATCHKEY_STREAM_WAIT must not be negative"))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, errors.New("LATCHKEY_SHUTDOWN_GRACE must not be negative"))
	}
	return errors.Join(errs...)
}

// Postgres is the database setting of the services that keep state.
type Postgres struct {
	// DatabaseURL is the Postgres connection string; each service uses its own schema in
	// it. Required.
	DatabaseURL string `env:"DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/latchkey?sslmode=disable"`
}

// Validate reports a missing DatabaseURL.
func (p Postgres) Validate() error {
	if p.DatabaseURL == "" {
		return errors.New("DATABASE_URL is required")
	}
	return nil
}

// AccountsPeer is the address of the accounts service, for the services that call it.
type AccountsPeer struct {
	// AccountsAddr is the accounts service's gRPC address; dialled lazily, so accounts
	// may start later. Required.
	AccountsAddr string `env:"ACCOUNTS_GRPC_ADDR" envDefault:"127.0.0.1:8081"`
}

// Validate reports a missing AccountsAddr.
func (p AccountsPeer) Validate() error {
	if p.AccountsAddr == "" {
		return errors.New("ACCOUNTS_GRPC_ADDR is required")
	}
	return nil
}

// KeysPeer is the address of the keys service, for the services that need it.
type KeysPeer struct {
	// KeysAddr is the keys service's gRPC address; dialled lazily, so keys may start
	// later. Required.
	KeysAddr string `env:"KEYS_GRPC_ADDR" envDefault:"127.0.0.1:8082"`
}

// Validate reports a missing KeysAddr.
func (p KeysPeer) Validate() error {
	if p.KeysAddr == "" {
		return errors.New("KEYS_GRPC_ADDR is required")
	}
	return nil
}

// Parse fills cfg, a pointer to a struct of tagged fields, from the environment: an unset
// or empty variable takes its envDefault (or leaves the field as it is, when there is
// none). The error names every variable whose value does not parse, with that value and
// what was wanted, one per line.
func Parse(cfg any) error {
	err := env.ParseWithOptions(cfg, env.Options{FuncMap: parsers})
	if err == nil {
		return nil
	}
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	keys := fieldKeys(reflect.TypeOf(cfg))
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) || len(keys[pe.Name]) == 0 {
			errs = append(errs, e)
			continue
		}
		key := strings.Join(keys[pe.Name], " or ")
		errs = append(errs, fmt.Errorf("%s=%s: %w", key, shown(os.Getenv(keys[pe.Name][0])), pe.Err))
	}
	return errors.Join(errs...)
}

// maxShown bounds a value echoed in a settings error.
const maxShown = 64

// shown is how a value that failed to parse is echoed: quoted when it is short and one
// line, else only its length. A short value helps ("1 minute" for a duration); a long or
// multi-line one may be a document holding a secret, such as a private key pasted where
// its public half belongs (LATCHKEY_SCANNING_PUBLIC_KEYS).
func shown(v string) string {
	if len(v) <= maxShown && !strings.ContainsAny(v, "\r\n") {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("(%d bytes, not shown)", len(v))
}

// Var is one variable a configuration struct reads.
type Var struct {
	// Name is the environment variable.
	Name string
	// Default is the value taken when it is unset or empty; HasDefault says whether the
	// field has one (else it keeps its zero value, or the caller decides).
	Default    string
	HasDefault bool
}

// Vars lists the variables cfg (a pointer to a struct) reads, in field order; tests hold
// it against the README's settings tables.
func Vars(cfg any) ([]Var, error) {
	params, err := env.GetFieldParamsWithOptions(cfg, env.Options{FuncMap: parsers})
	if err != nil {
		return nil, err
	}
	vars := make([]Var, len(params))
	for i, p := range params {
		vars[i] = Var{Name: p.Key, Default: p.DefaultValue, HasDefault: p.HasDefaultValue}
	}
	return vars, nil
}

// fieldKeys maps each tagged field's Go name to its variables, the way env walks a struct
// (into every struct-typed field), so a parse error, which names the field, can name the
// variable.
func fieldKeys(t reflect.Type) map[string][]string {
	keys := map[string][]string{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
				keys[f.Name] = append(keys[f.Name], key)
			}
			walk(f.Type)
		}
	}
	walk(t)
	return keys
}

// parsers read Latchkey's value types. The explanation each returns follows
// `VARIABLE="value": `.
var parsers = map[reflect.Type]env.ParserFunc{
	reflect.TypeFor[time.Duration](): func(v string) (any, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return nil, errors.New("want a duration like 30s or 24h, not negative")
		}
		return d, nil
	},
	reflect.TypeFor[int](): func(v string) (any, error) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, errors.New("want an integer")
		}
		return n, nil
	},
	reflect.TypeFor[int64](): func(v string) (any, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, errors.New("want an integer")
		}
		return n, nil
	},
	reflect.TypeFor[float64](): func(v string) (any, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, errors.New("want a number")
		}
		return f, nil
	},
	reflect.TypeFor[bool](): func(v string) (any, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errors.New("want true or false")
		}
		return b, nil
	},
	reflect.TypeFor[logging.Format](): func(v string) (any, error) {
		if f := logging.Format(v); f == logging.JSON || f == logging.Console {
			return f, nil
		}
		return nil, errors.New("want json or console")
	},
}
