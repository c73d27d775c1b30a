package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// Sender holds OpenTelemetry providers whose exporters send to a Latchkey gateway with one
// key. It is safe for concurrent use. Shut it down to flush what is buffered.
type Sender struct {
	tp   *sdktrace.TracerProvider
	mp   *sdkmetric.MeterProvider
	lp   *sdklog.LoggerProvider
	key  KeyInfo
	w    *watcher
	opts resolved
}

// Start finds the key profile and the key (Options.Profile, LATCHKEY_KEY_PROFILE or a
// detected built-in profile; Options.APIKey, the profile's environment variable, else the
// anonymous key file, minting a key into it when there is none: see Options.Profile and
// the package documentation), checks the key against the profile (keyformat.Registry.Parse)
// and builds the trace, metric and log providers with OTLP exporters for Options.Protocol,
// each sending `Authorization: Bearer <key>` to Options.Endpoint. In anonymous mode it logs
// once how long the data is kept and how to claim it.
//
// Errors: bad options (all reported at once); a profile that cannot be told (two key
// variables or two key files, a key several profiles take) or loaded; a key that is not a
// valid key of the profile, cannot ingest or is a browser session key (the message names
// the rule and the source, never the key); an anonymous key file that holds no anonymous
// key (left as it is: delete it to mint a new key); a failed mint (the API's code and
// message, after the retries of a 429 or 503) or a minted key of no known profile; ctx
// done while another start mints or while waiting to mint again.
func Start(ctx context.Context, o Options) (*Sender, error) {
	ro, err := o.resolve()
	if err != nil {
		return nil, err
	}
	mintClient := &http.Client{Timeout: mintTimeout}
	key, info, p, err := resolveKey(ctx, ro, mintAnonymous(mintClient, ro.apiURL))
	if err != nil {
		return nil, err
	}
	s := &Sender{key: info, w: newWatcher(ro.Logger, info), opts: ro}
	res := ro.Resource
	if res == nil {
		res = resource.Default()
		if ro.ServiceName != "" {
			if res, err = resource.Merge(res, resource.NewSchemaless(attribute.String("service.name", ro.ServiceName))); err != nil {
				return nil, fmt.Errorf("sender: resource: %w", err)
			}
		}
	}
	exp, err := newExporters(ctx, ro, key, s.w)
	if err != nil {
		return nil, err
	}
	s.tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp.traces), sdktrace.WithResource(res))
	readerOpts := []sdkmetric.PeriodicReaderOption{}
	if ro.MetricInterval > 0 {
		readerOpts = append(readerOpts, sdkmetric.WithInterval(ro.MetricInterval))
	}
	s.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp.metrics, readerOpts...)), sdkmetric.WithResource(res))
	s.lp = sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(exp.logs)), sdklog.WithResource(res))
	if ro.Global {
		otel.SetTracerProvider(s.tp)
		otel.SetMeterProvider(s.mp)
		otel.SetLoggerProvider(s.lp)
	}
	if info.Anonymous {
		s.remindAnonymous(p.reg)
	}
	return s, nil
}

// remindAnonymous logs, once per start, that the data of an anonymous key is kept for a
// while only and how to keep it.
func (s *Sender) remindAnonymous(reg *keyformat.Registry) {
	t, _ := reg.Lookup(s.key.Type)
	kept := "for a limited time"
	attrs := []any{slog.String("key", s.key.DisplayPrefix), slog.String("file", s.key.File), slog.String("source", string(s.key.Source))}
	if t != nil && t.DataTTL.Duration > 0 {
		kept = "for " + shortDuration(t.DataTTL.Duration)
		attrs = append(attrs, slog.Duration("data_ttl", t.DataTTL.Duration))
	}
	s.w.log.Info("latchkey: sending with an anonymous key: its data is kept "+kept+
		". To keep it, sign up and claim the key (POST "+s.opts.apiURL+"/v1/keys:claim with the key in "+s.key.File+
		"), then set "+s.key.EnvVar+" to the key the claim reveals", attrs...)
}

// shortDuration writes 48h, not 48h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// TracerProvider is the sender's trace provider (batching spans).
func (s *Sender) TracerProvider() *sdktrace.TracerProvider { return s.tp }

// MeterProvider is the sender's meter provider (a periodic reader, Options.MetricInterval).
func (s *Sender) MeterProvider() *sdkmetric.MeterProvider { return s.mp }

// LoggerProvider is the sender's OpenTelemetry logs provider (batching records); bridge a
// logging library to it (e.g. go.opentelemetry.io/contrib/bridges/otelslog).
func (s *Sender) LoggerProvider() *sdklog.LoggerProvider { return s.lp }

// Key describes the key the sender uses, without revealing it.
func (s *Sender) Key() KeyInfo { return s.key }

// Notice returns the last Latchkey-Key-Notice the gateway sent about the key, false when
// it has sent none (the key is not claimed, or the gateway says nothing).
func (s *Sender) Notice() (Notice, bool) { return s.w.lastNotice() }

// LastRejection returns the gateway's last refusal of the key (401/403), false when it has
// refused none. A later accepted export does not clear it; compare At.
func (s *Sender) LastRejection() (Rejection, bool) { return s.w.lastRejection() }

// ForceFlush exports whatever is buffered of every signal now, and returns the export
// errors (a refused key among them).
func (s *Sender) ForceFlush(ctx context.Context) error {
	return errors.Join(s.tp.ForceFlush(ctx), s.mp.ForceFlush(ctx), s.lp.ForceFlush(ctx))
}

// Shutdown flushes and stops every provider; the sender is unusable afterwards. Call it
// before the program exits, or buffered telemetry is lost.
func (s *Sender) Shutdown(ctx context.Context) error {
	return errors.Join(s.tp.Shutdown(ctx), s.mp.Shutdown(ctx), s.lp.Shutdown(ctx))
}
