package ingest

import (
	"context"
	"net/http"
	"strconv"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// The routes NewHTTPHandler serves, all POST.
const (
	PathTraces   = "/v1/traces"
	PathMetrics  = "/v1/metrics"
	PathLogs     = "/v1/logs"
	PathJSONLogs = "/ingest/logs"
)

// emptyResponse is an empty Export*ServiceResponse: no bytes in protobuf, {} in JSON.
// (pdata's NewExportResponse would set partial_success, which OTLP says to leave unset
// on full success.)
var emptyResponse = map[format][]byte{formatProto: {}, formatJSON: []byte("{}")}

type httpHandler struct {
	auth grant.Authorizer
	pub  *Publisher
	cfg  Config
}

// NewHTTPHandler serves OTLP/HTTP (POST /v1/traces, /v1/metrics, /v1/logs) and plain JSON
// logs (POST /ingest/logs); every error is JSON in the shape the profile says, the
// envelope by default (errors.go; other paths 404 not_found, other methods 405
// method_not_allowed). It expects to sit behind server.Edge, which gives
// each request its id (X-Request-Id), logger, limits and panic recovery.
func NewHTTPHandler(auth grant.Authorizer, pub *Publisher, cfg Config) http.Handler {
	return &httpHandler{auth: auth, pub: pub, cfg: cfg.withDefaults()}
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var sig Signal
	switch r.URL.Path {
	case PathTraces:
		sig = Traces
	case PathMetrics:
		sig = Metrics
	case PathLogs, PathJSONLogs:
		sig = Logs
	default:
		h.cfg.writeError(w, r, apierr.New(apierr.NotFound, "no such route: %s; ingest routes are POST %s, %s, %s and %s",
			shorten(r.URL.Path, 128), PathTraces, PathMetrics, PathLogs, PathJSONLogs))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.cfg.writeError(w, r, apierr.New(apierr.MethodNotAllowed, "%s is not allowed on %s; use POST", shorten(r.Method, 16), r.URL.Path))
		return
	}
	if r.URL.Path == PathJSONLogs {
		h.serveJSONLogs(w, r)
		return
	}
	h.serveOTLP(w, r, sig)
}

// authorize checks the key before anything reads the body, so a bad key costs no
// decompression or decoding. The grant's notice goes on whatever answer follows.
func (h *httpHandler) authorize(w http.ResponseWriter, r *http.Request) (grant.Grant, *apierr.Error) {
	key, aerr := presentedKey(r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
	if aerr != nil {
		return grant.Grant{}, aerr
	}
	g, aerr := authorize(r.Context(), h.auth, grant.Request{
		Key:      key,
		Origin:   r.Header.Get("Origin"),
		ClientIP: clientIP(r.RemoteAddr),
	}, logging.From(r.Context()))
	if g.Notice != "" {
		w.Header().Set(grant.NoticeHeader, g.Notice)
	}
	return g, aerr
}

func (h *httpHandler) serveOTLP(w http.ResponseWriter, r *http.Request, sig Signal) {
	ctx := r.Context()
	g, aerr := h.authorize(w, r)
	if aerr != nil {
		h.fail(w, r, transportOTLPHTTP, sig, aerr)
		return
	}
	f, aerr := otlpFormat(r.Header.Get("Content-Type"))
	if aerr != nil {
		h.fail(w, r, transportOTLPHTTP, sig, aerr)
		return
	}
	b, aerr := readBody(w, r, h.cfg.MaxBodyBytes)
	if aerr != nil {
		h.fail(w, r, transportOTLPHTTP, sig, aerr)
		return
	}
	defer b.release()
	payload, items, err := decodeOTLP(sig, f, b.data)
	if err != nil {
		h.fail(w, r, transportOTLPHTTP, sig, apierr.New(apierr.InvalidArgument, "%s", decodeError(sig, f, err)))
		return
	}
	if err := h.publish(ctx, g, sig, payload, items); err != nil {
		h.fail(w, r, transportOTLPHTTP, sig, apierr.FromError(err))
		return
	}
	requestsTotal.WithLabelValues(transportOTLPHTTP, string(sig), "ok").Inc()
	w.Header().Set("Content-Type", f.contentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(emptyResponse[f])))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(emptyResponse[f])
}

// publish stores payload, if it may be stored and holds items (see publishExport).
func (h *httpHandler) publish(ctx context.Context, g grant.Grant, sig Signal, payload []byte, items int) error {
	return publishExport(ctx, h.pub, g, sig, payload, items)
}

func (h *httpHandler) fail(w http.ResponseWriter, r *http.Request, transport string, sig Signal, e *apierr.Error) {
	requestsTotal.WithLabelValues(transport, string(sig), string(e.Code)).Inc()
	if e.Code == apierr.Unauthenticated {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	h.cfg.writeError(w, r, e)
}
