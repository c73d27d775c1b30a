package sender

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/sdk/resource"
)

// Protocol is the OTLP transport, named as OTEL_EXPORTER_OTLP_PROTOCOL names it.
type Protocol string

const (
	// HTTPProtobuf is OTLP/HTTP with protobuf bodies (the gateway's port 4318).
	HTTPProtobuf Protocol = "http/protobuf"
	// GRPC is OTLP/gRPC (the gateway's port 4317).
	GRPC Protocol = "grpc"
)

// Defaults of Options: where `make run` listens.
const (
	DefaultHTTPEndpoint = "http://127.0.0.1:4318"
	DefaultGRPCEndpoint = "http://127.0.0.1:4317"
	DefaultAPIURL       = "http://127.0.0.1:8080"
)

// The environment variables Start reads when the matching option is empty. The first two
// are OpenTelemetry's own (the OTLP exporter specification); LATCHKEY_API_URL is ours. The
// key's variable is the profile's (keyformat.SDK.APIKeyEnv).
const (
	EnvEndpoint = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvProtocol = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvAPIURL   = "LATCHKEY_API_URL"
)

// Options configure Start. The zero value sends to a local `make run` suite, of any
// built-in key profile, over OTLP/HTTP with the key of the profile's variable
// (LATCHKEY_API_KEY, …), or an anonymous key when none is set.
type Options struct {
	// Profile is the key profile of the Latchkey deployment: a built-in profile ("default",
	// "typed", "envkeys", "deeptracer", "lumiqtrace", "gmk") or the path of a profile file
	// (keyformat.LoadProfile). It decides which keys are valid, which environment variable
	// holds the key and where an anonymous key is kept.
	//
	// Empty, LATCHKEY_KEY_PROFILE (EnvProfile) names it, as for the services. When neither
	// does, Start detects it among the built-in profiles, in this order: APIKey set, the
	// profile whose parser takes it (two: an error naming them); else the profile whose key
	// variable (keyformat.SDK.APIKeyEnv) is set (two variables set: an error); else the
	// profile whose anonymous key file exists in Dir (.latchkey/anon_key,
	// .glasstrace/anon_key; both: an error); else anonymous mode: a key is minted and the
	// profile is the one whose anonymous key it is (none: an error, nothing written). So
	// a program needs no setting against a suite of any built-in profile.
	Profile string
	// APIKey is the key to send with. It overrides the profile's environment variable, so
	// one program can send to several projects by starting one Sender per key. A browser
	// session key is refused: it works only from a web page with an allowed Origin.
	APIKey string
	// Endpoint is the gateway's base URL: scheme (http sends in clear, https over TLS), host
	// and port, and for OTLP/HTTP an optional path prefix before /v1/traces. Default:
	// OTEL_EXPORTER_OTLP_ENDPOINT, else DefaultHTTPEndpoint or DefaultGRPCEndpoint.
	Endpoint string
	// Protocol is HTTPProtobuf or GRPC. Default: OTEL_EXPORTER_OTLP_PROTOCOL, else
	// HTTPProtobuf.
	Protocol Protocol
	// APIURL is the base URL of the management REST API, where an anonymous key is minted
	// (POST /v1/anonymous-keys). Default: LATCHKEY_API_URL, else DefaultAPIURL. Unused when
	// there is a key.
	APIURL string
	// Dir is the project directory that holds the anonymous key file (the profile's
	// anon_key_file, e.g. .latchkey/anon_key). Default: the working directory. A key
	// directory made there is 0700 with a .gitignore of "*"; an existing one keeps its mode
	// and gains .gitignore lines for the key file alone (see the package documentation).
	Dir string
	// ServiceName sets the resource's service.name; empty leaves OTEL_SERVICE_NAME or the
	// SDK's default. Ignored when Resource is set.
	ServiceName string
	// Resource describes the program in every signal; default resource.Default() (which
	// reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES) with ServiceName.
	Resource *resource.Resource
	// Global installs the providers as OpenTelemetry's globals (otel.SetTracerProvider,
	// otel.SetMeterProvider, otel.SetLoggerProvider), so instrumented libraries use them.
	Global bool
	// MetricInterval is how often metrics are collected and exported; default one minute
	// (OpenTelemetry's). ForceFlush exports at once whatever the interval.
	MetricInterval time.Duration
	// Logger receives the sender's reminders and reports (anonymous mode, a claimed key, a
	// refused key); default slog.Default(). Never a key, only its display prefix. A
	// *zap.Logger fits through go.uber.org/zap/exp/zapslog.
	Logger *slog.Logger
}

// resolved are the options with every default applied and checked.
type resolved struct {
	Options
	endpoint *url.URL
	apiURL   string
}

// resolve applies the environment and the defaults and checks the options; all problems
// are reported at once.
func (o Options) resolve() (resolved, error) {
	var errs []error
	if o.Protocol == "" {
		o.Protocol = Protocol(strings.TrimSpace(os.Getenv(EnvProtocol)))
	}
	switch o.Protocol {
	case "":
		o.Protocol = HTTPProtobuf
	case HTTPProtobuf, GRPC:
	default:
		errs = append(errs, fmt.Errorf("sender: protocol %q must be %q or %q", o.Protocol, HTTPProtobuf, GRPC))
	}
	if o.Endpoint == "" {
		o.Endpoint = strings.TrimSpace(os.Getenv(EnvEndpoint))
	}
	if o.Endpoint == "" {
		o.Endpoint = DefaultHTTPEndpoint
		if o.Protocol == GRPC {
			o.Endpoint = DefaultGRPCEndpoint
		}
	}
	r := resolved{}
	u, err := baseURL("endpoint", o.Endpoint)
	if err != nil {
		errs = append(errs, err)
	}
	r.endpoint = u
	if o.APIURL == "" {
		o.APIURL = strings.TrimSpace(os.Getenv(EnvAPIURL))
	}
	if o.APIURL == "" {
		o.APIURL = DefaultAPIURL
	}
	if u, err := baseURL("API URL", o.APIURL); err != nil {
		errs = append(errs, err)
	} else {
		r.apiURL = strings.TrimSuffix(u.String(), "/")
	}
	if o.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			errs = append(errs, fmt.Errorf("sender: finding the working directory for the anonymous key file: %w", err))
		}
		o.Dir = wd
	}
	if o.MetricInterval < 0 {
		errs = append(errs, errors.New("sender: metric interval must not be negative"))
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r.Options = o
	return r, errors.Join(errs...)
}

// baseURL parses an http or https URL with a host and no query or fragment.
func baseURL(what, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("sender: %s %q must be an http or https URL such as %s", what, s, DefaultHTTPEndpoint)
	}
	return u, nil
}
