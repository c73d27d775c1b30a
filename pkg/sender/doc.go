// Package sender is Latchkey's Go sender SDK: it gives a program OpenTelemetry trace, metric
// and log providers whose exporters send to a Latchkey ingest gateway with the right key,
// in three lines:
//
//	s, err := sender.Start(ctx, sender.Options{ServiceName: "checkout", Global: true})
//	if err != nil { return err }
//	defer s.Shutdown(ctx)
//
// The key is, in this order: Options.APIKey; the environment variable the key profile names
// (LATCHKEY_API_KEY, or GLASSTRACE_API_KEY under the "typed" profile, …, see
// keyformat.SDK); else, under a profile with an anonymous key type, an anonymous key kept in
// a file of the project directory (.latchkey/anon_key), minted once with
// POST /v1/anonymous-keys when the file does not exist. Concurrent starts, in one process or
// many, mint one key and all use it.
//
// The sender watches the gateway's answers: a Latchkey-Key-Notice (the anonymous key was
// claimed: switch to the new key before grace_until) is logged once and kept (Notice); a
// refusal of the key (401 or 403, over HTTP or gRPC) is logged once per code and message
// and kept (LastRejection), since the OpenTelemetry exporters alone report only an opaque
// error. It never logs a key, only its display prefix.
package sender
