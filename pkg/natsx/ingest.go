package natsx

import (
	"fmt"
	"strings"
)

// Ingest streams and subjects (docs/architecture.md): the gateways publish accepted
// telemetry here, and the keys service links a claimed anonymous key's data from the
// anonymous stream to its account.

// IngestStream is the stream of a namespace's keyed data, on <ns>.ingest.>.
func IngestStream(ns string) string { return strings.ToUpper(ns) + "_INGEST" }

// AnonIngestStream is the stream of a namespace's anonymous data, on <ns>.anon.>, kept for
// the anonymous key type's data_ttl.
func AnonIngestStream(ns string) string { return strings.ToUpper(ns) + "_INGEST_ANON" }

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
