package natsx

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Ingest streams and subjects (docs/architecture.md): the gateways publish accepted
// telemetry here, and the keys service links a claimed anonymous key's data from the
// anonymous stream to its account.

// IngestStream is the stream of a namespace's keyed data, on <ns>.ingest.>.
func IngestStream(ns string) string { return strings.ToUpper(ns) + "_INGEST" }

// AnonIngestStream is the stream of a namespace's anonymous data, on <ns>.anon.>, kept for
// the anonymous key type's data_ttl.
func AnonIngestStream(ns string) string { return strings.ToUpper(ns) + "_INGEST_ANON" }

// IngestDuplicateWindow is how long the ingest streams remember a Nats-Msg-Id: a client's
// retry of the same request (same key, same X-Request-Id) within it is stored once. A
// stream kept for less has a window as long as it is kept (JetStream refuses more).
const IngestDuplicateWindow = 2 * time.Minute

// IngestStreamConfigs are the two ingest streams, as every gateway keeps them and as the
// keys service expects them when it links claimed data: IngestStream on IngestSubjects
// kept for retention, and AnonIngestStream on AnonIngestSubjects kept for anonRetention
// (the anonymous key type's data_ttl), both file-stored with limits retention. Its errors
// name a namespace that is not one subject token or a retention that is not positive.
func IngestStreamConfigs(ns string, retention, anonRetention time.Duration) ([]jetstream.StreamConfig, error) {
	if !ValidToken(ns) {
		return nil, fmt.Errorf("natsx: namespace %q must be one NATS subject token", ns)
	}
	if retention <= 0 || anonRetention <= 0 {
		return nil, fmt.Errorf("natsx: ingest stream retention must be positive (got %s and %s)", retention, anonRetention)
	}
	return []jetstream.StreamConfig{
		WithRetention(jetstream.StreamConfig{
			Name:        IngestStream(ns),
			Description: "Latchkey accepted telemetry (OTLP protobuf), by account, project, environment and signal",
			Subjects:    []string{IngestSubjects(ns)},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
		}, retention),
		WithRetention(jetstream.StreamConfig{
			Name:        AnonIngestStream(ns),
			Description: "Latchkey accepted telemetry from anonymous keys (OTLP protobuf)",
			Subjects:    []string{AnonIngestSubjects(ns)},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
		}, anonRetention),
	}, nil
}

// WithRetention returns cfg, an ingest stream's configuration, kept for maxAge, its
// duplicate window IngestDuplicateWindow or maxAge if that is shorter.
func WithRetention(cfg jetstream.StreamConfig, maxAge time.Duration) jetstream.StreamConfig {
	cfg.MaxAge, cfg.Duplicates = maxAge, min(IngestDuplicateWindow, maxAge)
	return cfg
}

// IngestSubjects is the subject filter of IngestStream.
func IngestSubjects(ns string) string { return ns + ".ingest.>" }

// AnonIngestSubjects is the subject filter of AnonIngestStream.
func AnonIngestSubjects(ns string) string { return ns + ".anon.>" }

// IngestSubject is where data of an account's key goes:
// <ns>.ingest.<account>.<project>.<environment>.<signal>, NoToken standing for an empty
// project or environment. Its error names the part that is not a subject token.
func IngestSubject(ns, accountID, projectID, environment, signal string) (string, error) {
	project, env := orNoToken(projectID), orNoToken(environment)
	for _, p := range []struct{ name, v string }{
		{"namespace", ns}, {"account id", accountID}, {"project id", project}, {"environment", env}, {"signal", signal},
	} {
		if !ValidToken(p.v) {
			return "", fmt.Errorf("natsx: %s %q is not a subject token", p.name, p.v)
		}
	}
	return ns + ".ingest." + accountID + "." + project + "." + env + "." + signal, nil
}

// AnonSubject is where data of an anonymous key goes, <ns>.anon.<key id>.<signal>, so that
// one key's data can be found to be claimed (AnonKeySubjects).
func AnonSubject(ns, keyID, signal string) (string, error) {
	for _, p := range []struct{ name, v string }{{"namespace", ns}, {"key id", keyID}, {"signal", signal}} {
		if !ValidToken(p.v) {
			return "", fmt.Errorf("natsx: %s %q is not a subject token", p.name, p.v)
		}
	}
	return ns + ".anon." + keyID + "." + signal, nil
}

// AnonKeySubjects is the filter of every subject of one anonymous key's data, of any
// signal; "" when keyID is not a subject token.
func AnonKeySubjects(ns, keyID string) string {
	if !ValidToken(ns) || !ValidToken(keyID) {
		return ""
	}
	return ns + ".anon." + keyID + ".>"
}

// SignalOfSubject is the last token of an ingest or anonymous subject: its signal.
func SignalOfSubject(subject string) string {
	return subject[strings.LastIndexByte(subject, '.')+1:]
}

func orNoToken(s string) string {
	if s == "" {
		return NoToken
	}
	return s
}
