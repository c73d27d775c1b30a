// Package sender is Latchkey's Go sender SDK: it gives a program OpenTelemetry trace, metric
// and log providers whose exporters send to a Latchkey ingest gateway with the right key,
// in three lines:
//
//	s, err := sender.Start(ctx, sender.Options{ServiceName: "checkout", Global: true})
//	if err != nil { return err }
//	defer s.Shutdown(ctx)
//
// The key profile is Options.Profile, else LATCHKEY_KEY_PROFILE, else detected among the
// built-in profiles: from Options.APIKey, else from the key variable that is set
// (LATCHKEY_API_KEY, GLASSTRACE_API_KEY, …, see keyformat.SDK), else from the anonymous key
// file present (.latchkey/anon_key, .glasstrace/anon_key), else from the key a mint
// returns (see Options.Profile). The key is, in this order: Options.APIKey; the profile's
// variable; else, under a profile with an anonymous key type, an anonymous key kept in a
// file of the project directory, minted once with POST /v1/anonymous-keys (tried again
// on 429 and 503 as Retry-After says) when the file does not exist. Concurrent starts, in
// one process or many, mint one key and all use it. A key that cannot send (no ingest
// capability, or a browser session key) is refused at start.
//
// The key file is written 0600. A directory the sender makes for it is 0700 with a
// .gitignore of "*"; an existing directory keeps its mode and other files, and its
// .gitignore gains lines naming the key file (and its temporary files) unless it ignores
// them already, so the key is never committed by accident. A start that fails leaves
// nothing in the project directory.
//
// The sender watches the gateway's answers: a Latchkey-Key-Notice (the anonymous key was
// claimed: switch to the new key before grace_until) is logged once and kept (Notice); a
// refusal of the key (401 or 403, over HTTP or gRPC) is logged once per code and message
// and kept (LastRejection), since the OpenTelemetry exporters alone report only an opaque
// error. It never logs a key, only its display prefix.
package sender
