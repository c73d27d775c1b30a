// Command example sends a span, a metric point and a log record to a Latchkey gateway
// through the sender SDK, and says whether the gateway took them. Without a key it keeps
// an anonymous key in the working directory: run it from a scratch directory (README).
package main

import (
	"context"
	"fmt"
	"log"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"

	"github.com/latchkey/latchkey/pkg/sender"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	s, err := sender.Start(ctx, sender.Options{ServiceName: "checkout", Global: true})
	if err != nil {
		return err
	}
	defer func() { _ = s.Shutdown(ctx) }() // flushes what is buffered

	// Instrumented code uses the OpenTelemetry globals as usual.
	ctx, span := otel.Tracer("checkout").Start(ctx, "charge")
	charges, _ := otel.Meter("checkout").Int64Counter("charges")
	charges.Add(ctx, 1)
	var rec otellog.Record
	rec.SetBody(attribute.StringValue("card charged"))
	otel.GetLoggerProvider().Logger("checkout").Emit(ctx, rec)
	span.End()

	k := s.Key()
	if err := s.ForceFlush(ctx); err != nil {
		// A refused key is also in s.LastRejection(): the gateway's code and message.
		return fmt.Errorf("not sent with the %s key %s… (from %s, profile %s): %w", k.Type, k.DisplayPrefix, k.Source, k.Profile, err)
	}
	fmt.Printf("sent with the %s key %s… (from %s, profile %s)\n", k.Type, k.DisplayPrefix, k.Source, k.Profile)
	return nil
}
