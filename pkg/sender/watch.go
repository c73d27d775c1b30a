package sender

import (
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// NoticeHeader is the HTTP response header in which the gateway tells an SDK about its key
// (over gRPC, the response header metadata NoticeMetadata):
//
//	Latchkey-Key-Notice: claimed; grace_until=2026-03-01T12:00:00Z
const (
	NoticeHeader   = "Latchkey-Key-Notice"
	NoticeMetadata = "latchkey-key-notice"
)

// NoticeClaimed is the notice of a claimed anonymous key.
const NoticeClaimed = "claimed"

// Notice is what the gateway said about the key in its last Latchkey-Key-Notice.
type Notice struct {
	// Kind is the notice: NoticeClaimed (the anonymous key was claimed by an account; it
	// keeps working until GraceUntil, then the gateway refuses it: switch to the key the
	// claim revealed).
	Kind string
	// GraceUntil is when the key stops working; zero when the notice did not say or said
	// it in a form other than RFC 3339.
	GraceUntil time.Time
	// At is when the sender saw the notice.
	At time.Time
}

// parseNotice reads one header value, strictly but tolerantly: the kind is a token before
// the first ';' (case and spaces do not matter), then name=value parameters, values bare
// or quoted; unknown parameters are skipped. Only kinds this package knows are taken
// (NoticeClaimed), so a future notice is ignored rather than misread; a claimed notice
// whose grace_until is missing or not RFC 3339 is still taken, with no date, because the
// reminder to switch matters more than the date.
func parseNotice(value string) (Notice, bool) {
	parts := strings.Split(value, ";")
	kind := strings.ToLower(strings.TrimSpace(parts[0]))
	if kind != NoticeClaimed {
		return Notice{}, false
	}
	n := Notice{Kind: kind}
	for _, p := range parts[1:] {
		name, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "grace_until") || !n.GraceUntil.IsZero() {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			n.GraceUntil = t
		}
	}
	return n, true
}

// Rejection is a refusal of the key by the gateway: 401 or 403 over HTTP, UNAUTHENTICATED
// or PERMISSION_DENIED over gRPC.
type Rejection struct {
	// Code is the gateway's machine code: "unauthenticated" for a missing, malformed,
	// unknown, revoked or expired key (Message tells which), "origin_not_allowed",
	// "insufficient_capability", "account_suspended", …; over gRPC the reason of its
	// google.rpc.ErrorInfo.
	Code string
	// Reason says why a key that was good once is refused: "revoked" or "expired" (the
	// gateway's envelope field "reason"; over gRPC the ErrorInfo metadata of that name);
	// empty otherwise.
	Reason string
	// Message is the gateway's human text ("the key has been revoked"), redacted.
	Message string
	// HTTPStatus is the HTTP status; 0 over gRPC.
	HTTPStatus int
	// GRPCCode is the gRPC status code; codes.OK over HTTP.
	GRPCCode codes.Code
	// RequestID is the gateway's request id, for its logs.
	RequestID string
	// Signal is "traces", "metrics" or "logs".
	Signal string
	// At is when the sender saw it.
	At time.Time
}

// watcher keeps what the gateway said about the key and logs each thing once: the
// claimed notice once per sender, a rejection once per code and message (so a revoked
// key is reported once, and again if it later expires or is refused for its origin).
type watcher struct {
	log  *slog.Logger
	info KeyInfo
	now  func() time.Time

	mu        sync.Mutex
	notice    *Notice
	reminded  bool
	rejection *Rejection
	reported  map[[2]string]bool
}

func newWatcher(log *slog.Logger, info KeyInfo) *watcher {
	return &watcher{log: log, info: info, now: time.Now, reported: map[[2]string]bool{}}
}

// sawNotice takes the values of a notice header; the first one that parses wins.
func (w *watcher) sawNotice(values []string) {
	for _, v := range values {
		n, ok := parseNotice(v)
		if !ok {
			continue
		}
		n.At = w.now()
		w.mu.Lock()
		w.notice = &n
		first := !w.reminded
		w.reminded = true
		w.mu.Unlock()
		if first {
			w.remindClaimed(n)
		}
		return
	}
}

func (w *watcher) remindClaimed(n Notice) {
	attrs := []any{slog.String("key", w.info.DisplayPrefix), slog.String("env", w.info.EnvVar)}
	until := "for its grace period"
	if !n.GraceUntil.IsZero() {
		attrs = append(attrs, slog.Time("grace_until", n.GraceUntil))
		until = "until " + n.GraceUntil.UTC().Format(time.RFC3339)
	}
	msg := "latchkey: this anonymous key has been claimed by an account; it keeps working " + until +
		", then the gateway refuses it: set " + w.info.EnvVar + " (or Options.APIKey) to the key the claim revealed"
	if w.info.File != "" && w.info.Anonymous {
		msg += " and delete " + w.info.File
		attrs = append(attrs, slog.String("file", w.info.File))
	}
	w.log.Warn(msg, attrs...)
}

// sawRejection records r and logs it the first time its code and message are seen.
func (w *watcher) sawRejection(r Rejection) {
	r.At = w.now()
	k := [2]string{r.Code, r.Message}
	w.mu.Lock()
	w.rejection = &r
	first := !w.reported[k]
	w.reported[k] = true
	w.mu.Unlock()
	if !first {
		return
	}
	attrs := []any{
		slog.String("code", r.Code), slog.String("reason", r.Reason), slog.String("message", r.Message), slog.String("key", w.info.DisplayPrefix),
		slog.String("signal", r.Signal), slog.String("request_id", r.RequestID),
	}
	if r.HTTPStatus != 0 {
		attrs = append(attrs, slog.Int("status", r.HTTPStatus))
	} else {
		attrs = append(attrs, slog.String("grpc_code", r.GRPCCode.String()))
	}
	w.log.Error("latchkey: the gateway refuses this key; telemetry is being dropped", attrs...)
}

func (w *watcher) lastNotice() (Notice, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.notice == nil {
		return Notice{}, false
	}
	return *w.notice, true
}

func (w *watcher) lastRejection() (Rejection, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rejection == nil {
		return Rejection{}, false
	}
	return *w.rejection, true
}

// signalOf names the signal of an OTLP path (/v1/traces) or gRPC method
// (/opentelemetry.proto.collector.trace.v1.TraceService/Export).
func signalOf(s string) string {
	switch {
	case strings.HasSuffix(s, "/v1/traces"), strings.Contains(s, ".trace.v1."):
		return "traces"
	case strings.HasSuffix(s, "/v1/metrics"), strings.Contains(s, ".metrics.v1."):
		return "metrics"
	case strings.HasSuffix(s, "/v1/logs"), strings.Contains(s, ".logs.v1."):
		return "logs"
	default:
		return ""
	}
}
