package sender

import (
	"log/slog"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOptionsDefaults(t *testing.T) {
	clearEnv(t)
	o, err := Options{}.resolve()
	require.NoError(t, err)
	require.Equal(t, HTTPProtobuf, o.Protocol)
	require.Equal(t, DefaultHTTPEndpoint, o.Endpoint)
	require.Equal(t, DefaultAPIURL, o.apiURL)
	wd, err := os.Getwd()
	require.NoError(t, err)
	require.Equal(t, wd, o.Dir)
	require.Same(t, slog.Default(), o.Logger)
	require.Equal(t, "http://127.0.0.1:4318/v1/traces", signalURL(o.endpoint, "traces"))

	o, err = Options{Protocol: GRPC}.resolve()
	require.NoError(t, err)
	require.Equal(t, DefaultGRPCEndpoint, o.Endpoint)
	require.Equal(t, "http://127.0.0.1:4317", grpcEndpoint(o.endpoint))
}

// OpenTelemetry's variables and LATCHKEY_API_URL apply when the option is empty; an option
// beats them.
func TestOptionsFromEnvironment(t *testing.T) {
	clearEnv(t)
	t.Setenv(EnvProtocol, "grpc")
	t.Setenv(EnvEndpoint, "https://ingest.example.com:4317")
	t.Setenv(EnvAPIURL, "https://api.example.com/")
	o, err := Options{}.resolve()
	require.NoError(t, err)
	require.Equal(t, GRPC, o.Protocol)
	require.Equal(t, "https://ingest.example.com:4317", grpcEndpoint(o.endpoint))
	require.Equal(t, "https://api.example.com", o.apiURL)

	o, err = Options{Protocol: HTTPProtobuf, Endpoint: "https://gw.example.com/otlp/", APIURL: "http://127.0.0.1:9"}.resolve()
	require.NoError(t, err)
	require.Equal(t, HTTPProtobuf, o.Protocol)
	require.Equal(t, "https://gw.example.com/otlp/v1/logs", signalURL(o.endpoint, "logs"))
	require.Equal(t, "http://127.0.0.1:9", o.apiURL)
}

// Every bad option is reported at once.
func TestOptionsRejects(t *testing.T) {
	clearEnv(t)
	_, err := Options{Protocol: "http/json", Endpoint: "127.0.0.1:4317", APIURL: "ftp://x", MetricInterval: -1}.resolve()
	for _, want := range []string{
		`protocol "http/json" must be "http/protobuf" or "grpc"`,
		`endpoint "127.0.0.1:4317" must be an http or https URL`,
		`API URL "ftp://x" must be an http or https URL`,
		"metric interval must not be negative",
	} {
		require.ErrorContains(t, err, want)
	}
	t.Setenv(EnvProtocol, "thrift")
	_, err = Options{}.resolve()
	require.ErrorContains(t, err, `protocol "thrift"`)
	for _, bad := range []string{"http://", "http://h/?q=1", "http://u:p@h", "http://h/#f"} {
		_, err := Options{Endpoint: bad}.resolve()
		require.Error(t, err, bad)
	}
}
