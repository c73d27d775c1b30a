// Package settings declares, once, the settings that several Latchkey services share
// (namespace, operator token, NATS, Postgres, the other services' addresses, shutdown
// grace, logging, TLS) and reads any configuration struct from the environment.
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
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/tlsfiles"
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
	// StreamReplicas is on how many NATS servers each JetStream stream the service makes is
	// kept (natsx.Replicated): 3 on a 3-node cluster, 1 on a single server, which cannot
	// hold more.
	StreamReplicas Replicas `env:"LATCHKEY_STREAM_REPLICAS" envDefault:"1"`
	// StreamWait bounds how long a starting service waits for its streams
	// (natsx.Keeper.EnsureWithin) before it gives up with an error; 0 (a Config built in
	// code) is natsx.DefaultStreamWait.
	StreamWait time.Duration `env:"LATCHKEY_STREAM_WAIT" envDefault:"1m"`
	// ShutdownGrace is how long in-flight calls get to finish after SIGTERM; not negative.
	ShutdownGrace time.Duration `env:"LATCHKEY_SHUTDOWN_GRACE" envDefault:"10s"`
	// Log is how the binary logs.
	Log logging.Config
	// TLS is the certificate the service serves and dials with; none for plaintext.
	TLS TLS
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
	if err := c.TLS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TLS names the PEM files of a service's TLS, which platform tooling may rotate in place
// (they are read again when they change, see tlsfiles). None set: plaintext everywhere.
// A certificate and key: every listener serves TLS and every gRPC client dials TLS,
// verifying peers against the system's roots. A CA as well: the internal gRPC listeners
// (accounts, keys, audit) demand a client certificate the CA signed, clients trust only
// the CA, and NATS is dialled with TLS too (as it is whenever NATS_URL is tls://). Public
// listeners (REST, /healthz, the gateway's OTLP) never ask for a client certificate.
// Postgres's TLS is DATABASE_URL's (sslmode, sslrootcert, sslcert, sslkey).
type TLS struct {
	// CertFile is this service's certificate (chain, leaf first), served by its listeners
	// and presented to its peers; it must name every address peers dial it by (DNS names
	// or IP addresses) and allow both server and client authentication.
	CertFile string `env:"LATCHKEY_TLS_CERT_FILE"`
	// KeyFile is CertFile's private key.
	KeyFile string `env:"LATCHKEY_TLS_KEY_FILE"`
	// CAFile is the bundle of CAs that sign the services' certificates (and NATS's).
	CAFile string `env:"LATCHKEY_TLS_CA_FILE"`
}

// Validate reports a certificate without its key or the other way round, and a CA
// without a certificate (mutual TLS needs one to present).
func (t TLS) Validate() error {
	if (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("LATCHKEY_TLS_CERT_FILE and LATCHKEY_TLS_KEY_FILE must be set together")
	}
	if t.CAFile != "" && t.CertFile == "" {
		return errors.New("LATCHKEY_TLS_CA_FILE needs LATCHKEY_TLS_CERT_FILE and LATCHKEY_TLS_KEY_FILE: mutual TLS presents this service's certificate")
	}
	return nil
}

// Load reads the files (nil, nil when none is set); an unreadable or unusable one is an
// error naming the file. Reload problems later are logged to log.
func (t TLS) Load(log *zap.Logger) (*tlsfiles.Files, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	f, err := tlsfiles.Load(tlsfiles.Paths{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile}, log)
	if err != nil {
		return nil, fmt.Errorf("LATCHKEY_TLS_CERT_FILE, LATCHKEY_TLS_KEY_FILE, LATCHKEY_TLS_CA_FILE: %w", err)
	}
	return f, nil
}

// Replicas is how many copies of a JetStream stream NATS keeps: 1 to natsx.MaxReplicas
// when read from the environment. 0, in a configuration built in code that names none, is
// JetStream's default, 1.
type Replicas int

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

// Var is one variable a configuration struct reads; Describe writes it as JSON for
// `<svc> settings`.
type Var struct {
	// Name is the environment variable.
	Name string `json:"name"`
	// Default is the value taken when it is unset or empty; HasDefault says whether the
	// field has one (else it keeps its zero value, or the caller decides).
	Default    string `json:"default"`
	HasDefault bool   `json:"has_default"`
	// Required says the service does not serve without it (Describe); Vars leaves it false.
	Required bool `json:"required"`
}

// Describe lists the variables a configuration C reads (Vars, in field order) and marks
// Required those the service cannot serve without: the ones validate (C's Validate)
// names when C is read from an empty environment, every setting at its default. It reads
// nothing from the process's environment. Every line of that error must name one of C's
// variables, as every settings error here does ("LATCHKEY_PEPPER must be set…"); a line
// naming none is an error, so a new required setting cannot go unlisted. The Kubernetes
// manifests' test (deploy/kubernetes) sets every required variable from this list.
func Describe[C any](validate func(C) error) ([]Var, error) {
	var cfg C
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{}, FuncMap: parsers}); err != nil {
		return nil, fmt.Errorf("settings: the defaults do not parse: %w", err)
	}
	vars, err := Vars(&cfg)
	if err != nil {
		return nil, err
	}
	verr := validate(cfg)
	if verr == nil {
		return vars, nil
	}
	index := make(map[string]int, len(vars))
	for i, v := range vars {
		index[v.Name] = i
	}
	for line := range strings.Lines(verr.Error()) {
		named := false
		for _, word := range varName.FindAllString(line, -1) {
			if i, ok := index[word]; ok {
				vars[i].Required, named = true, true
			}
		}
		if !named {
			return nil, fmt.Errorf("settings: with every default, the configuration fails with %q, which names none of its variables", strings.TrimSpace(line))
		}
	}
	return vars, nil
}

// varName matches what may be an environment variable's name in an error message.
var varName = regexp.MustCompile(`[A-Z][A-Z0-9_]*[A-Z0-9]`)

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
	reflect.TypeFor[Replicas](): func(v string) (any, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > natsx.MaxReplicas {
			return nil, fmt.Errorf("want 1 to %d", natsx.MaxReplicas)
		}
		return Replicas(n), nil
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
