// Command example sends a span, a metric point and a log record to a Latchkey gateway
// through the sender SDK. Against `make run`: go run ./pkg/sender/example
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
	ctx := context.Background()
	s, err := sender.Start(ctx, sender.Options{ServiceName: "checkout", Global: true})
	if err != nil {
		log.Fatal(err)
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

	if err := s.ForceFlush(ctx); err != nil {
		log.Printf("export failed: %v", err) // a refused key is also in s.LastRejection()
	}
	k := s.Key()
	fmt.Printf("sent with the %s key %s… (from %s)\n", k.Type, k.DisplayPrefix, k.Source)
}
