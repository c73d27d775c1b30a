package sender

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
)

// exportTimeout bounds one export request, as OpenTelemetry's default does.
const exportTimeout = 10 * time.Second

// exporters are one exporter per signal.
type exporters struct {
	traces  sdktrace.SpanExporter
	metrics sdkmetric.Exporter
	logs    sdklog.Exporter
}

// newExporters builds the OTLP exporters of o.Protocol, sending gzip-compressed bodies (the
// gateway takes them over HTTP and gRPC). The key is set on each request by
// gatewayTransport or unaryInterceptor, which also show the answers to the watcher; the
// exporters' own headers (OTEL_EXPORTER_OTLP_HEADERS) stay as OpenTelemetry reads them.
func newExporters(ctx context.Context, o resolved, key string, w *watcher) (exporters, error) {
	bearer := "Bearer " + key
	var (
		e                      exporters
		errTr, errMet, errLogs error
	)
	switch o.Protocol {
	case GRPC:
		ep := grpcEndpoint(o.endpoint)
		dial := grpc.WithChainUnaryInterceptor(w.unaryInterceptor(bearer))
		e.traces, errTr = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(ep),
			otlptracegrpc.WithCompressor("gzip"), otlptracegrpc.WithDialOption(dial))
		e.metrics, errMet = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL(ep),
			otlpmetricgrpc.WithCompressor("gzip"), otlpmetricgrpc.WithDialOption(dial))
		e.logs, errLogs = otlploggrpc.New(ctx, otlploggrpc.WithEndpointURL(ep),
			otlploggrpc.WithCompressor("gzip"), otlploggrpc.WithDialOption(dial))
	default:
		base := http.DefaultTransport.(*http.Transport).Clone()
		client := &http.Client{Timeout: exportTimeout, Transport: &gatewayTransport{base: base, bearer: bearer, w: w}}
		e.traces, errTr = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(signalURL(o.endpoint, "traces")),
			otlptracehttp.WithCompression(otlptracehttp.GzipCompression), otlptracehttp.WithHTTPClient(client))
		e.metrics, errMet = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(signalURL(o.endpoint, "metrics")),
			otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression), otlpmetrichttp.WithHTTPClient(client))
		e.logs, errLogs = otlploghttp.New(ctx, otlploghttp.WithEndpointURL(signalURL(o.endpoint, "logs")),
			otlploghttp.WithCompression(otlploghttp.GzipCompression), otlploghttp.WithHTTPClient(client))
	}
	if err := errors.Join(errTr, errMet, errLogs); err != nil {
		for _, shut := range []func(context.Context) error{shutdownOf(e.traces), shutdownOf(e.metrics), shutdownOf(e.logs)} {
			if shut != nil {
				_ = shut(ctx)
			}
		}
		return exporters{}, fmt.Errorf("sender: building the OTLP exporters: %w", err)
	}
	return e, nil
}

// shutdownOf is an exporter's Shutdown, nil when it was not built.
func shutdownOf(e interface{ Shutdown(context.Context) error }) func(context.Context) error {
	if e == nil {
		return nil
	}
	return e.Shutdown
}

// signalURL is the OTLP/HTTP URL of a signal under the base URL, as the OTLP exporter
// specification builds it from OTEL_EXPORTER_OTLP_ENDPOINT: <base path>/v1/<signal>.
func signalURL(base *url.URL, signal string) string {
	u := *base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/" + signal
	u.RawPath = ""
	return u.String()
}

// grpcEndpoint is the base URL without its path (gRPC has none).
func grpcEndpoint(base *url.URL) string {
	return (&url.URL{Scheme: base.Scheme, Host: base.Host}).String()
}
