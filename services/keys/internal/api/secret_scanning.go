package api

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/services/keys/internal/scanning"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// SecretScanningPath is where leak reports are posted (POST), on the REST listener.
const SecretScanningPath = "/v1/secret-scanning/reports" //nolint:gosec // a route, not a credential

// MaxReportTokens is the most tokens one leak report may carry, GitHub's batch bound; a
// report with more is refused whole, 413 payload_too_large, and changes nothing.
const MaxReportTokens = 1000

// The labels of GitHub's feedback format.
const (
	LabelTruePositive  = "true_positive"
	LabelFalsePositive = "false_positive"
)

// Bounds of what a report's url and source carry into events and the audit log.
const (
	maxReportURL    = 2048
	maxReportSource = 64
)

// exposedAction is the audit event of a key a leak report exposed, in its owner's log, by
// the actor auditlog.ActorSecretScanning.
var exposedAction = auditlog.Action{Name: "keys.exposed", Resource: "key"}

// reportItem is one match of a report, in GitHub's partner format. Other fields are
// ignored, so that fields GitHub adds do not break reports.
type reportItem struct {
	Token  *string `json:"token"`
	Type   string  `json:"type"`
	URL    string  `json:"url"`
	Source string  `json:"source"`
}

// Feedback is the answer for one token, in GitHub's feedback format: the token's SHA-256
// (plain, hex; never the token), the report's type for it, and the label.
type Feedback struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// The errors a reporter can see.
var (
	errScanningOff = apierr.New(apierr.NotFound, "leak reports are not enabled on this deployment: LATCHKEY_SCANNING_PUBLIC_KEYS names no key")
	errReportShape = apierr.New(apierr.InvalidArgument, `the report must be a JSON array of objects {"token", "type", "url", "source"}, each token a string, and nothing after the array`)
	errTooMany     = apierr.New(apierr.PayloadTooLarge, "a report carries at most %d tokens; split it", MaxReportTokens)
	errReportLost  = apierr.New(apierr.Unavailable, "the report could not be applied; send it again (a report applies once, however often it is sent)")
)

// SecretScanning returns the handler of POST /v1/secret-scanning/reports (docs/keys.md,
// "Leaked keys"), for server.Gateway.Handlers: it runs behind the REST edge, which gives it
// a request id, recovery and the body limit, and reads the raw body, which the signature
// covers. With keys empty it answers every report 404 not_found: leak reports are off.
//
// A report is trusted only when the key its Github-Public-Key-Identifier names is among
// keys and its Github-Public-Key-Signature verifies over the body exactly as received;
// otherwise 401 unauthenticated, before the body is parsed. A trusted report is a JSON
// array of at most MaxReportTokens objects {token, type, url, source} (400
// invalid_argument for any other shape, 413 for more tokens). Each token that parses
// (Registry.Parse) and whose keyed hash is a stored key is a true positive; every other
// token is a false positive. A true positive that is live (active or in grace) and not
// exposed before is exposed: exposed_at set, and per its type's on_exposed revoked at once
// (reason "exposed", a key.revoked event) or only notified; either way a key.exposed event
// and the audit event keys.exposed by secret_scanning in the owner's account, all in one
// transaction per key. The answer, 200, is the feedback for each token in the report's
// order. Tokens are neither logged nor echoed: the answer names each by its SHA-256.
func (s *Server) SecretScanning(keys *scanning.PublicKeys) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			server.WriteError(w, r, apierr.New(apierr.MethodNotAllowed, "%s is not allowed on %s; POST a report", r.Method, SecretScanningPath))
			return
		}
		if keys.Len() == 0 {
			server.WriteError(w, r, errScanningOff)
			return
		}
		log := logging.From(r.Context())
		key, sig, err := signer(keys, r.Header)
		if err != nil {
			log.Info("leak report refused", zap.String("reason", err.Error()))
			server.WriteError(w, r, apierr.New(apierr.Unauthenticated, "%s", err))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			if server.BodyTooLarge(r.Context()) {
				server.WriteError(w, r, apierr.New(apierr.PayloadTooLarge, "the report is too large"))
				return
			}
			server.WriteError(w, r, apierr.New(apierr.InvalidArgument, "the report's body could not be read"))
			return
		}
		if err := scanning.Verify(key, sig, body); err != nil {
			log.Info("leak report refused", zap.String("reason", err.Error()))
			server.WriteError(w, r, apierr.New(apierr.Unauthenticated, "%s", err))
			return
		}
		items, aerr := decodeReport(body)
		if aerr != nil {
			server.WriteError(w, r, aerr)
			return
		}
		answer, err := s.applyReport(callContext(r), items)
		if err != nil {
			log.Error("leak report not applied", zap.Int("tokens", len(items)), zap.Error(err))
			var known *apierr.Error
			if !errors.As(err, &known) {
				err = errReportLost
			}
			server.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer)
	})
}

// signer is the key a report's headers name and its signature; each header once.
func signer(keys *scanning.PublicKeys, h http.Header) (key *ecdsa.PublicKey, sig string, err error) {
	ids, sigs := h.Values(scanning.HeaderKeyID), h.Values(scanning.HeaderSignature)
	if len(ids) == 0 || len(sigs) == 0 {
		return nil, "", scanning.ErrUnsigned
	}
	if len(ids) > 1 || len(sigs) > 1 {
		return nil, "", errors.New("the report names more than one key or signature")
	}
	k, err := keys.Key(ids[0])
	if err != nil {
		return nil, "", err
	}
	return k, sigs[0], nil
}

// callContext is the request's context with its client address and user agent where
// callmeta finds them for a gRPC call, so the audit event records them alike.
func callContext(r *http.Request) context.Context {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return metadata.NewIncomingContext(r.Context(), metadata.Pairs("x-forwarded-for", ip, "x-user-agent", r.UserAgent()))
}

// decodeReport reads a report: one JSON array of at most MaxReportTokens objects, each with
// a string token.
func decodeReport(body []byte) ([]reportItem, *apierr.Error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, errReportShape
	}
	var items []reportItem
	for dec.More() {
		if len(items) == MaxReportTokens {
			return nil, errTooMany
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil || len(raw) == 0 || raw[0] != '{' {
			return nil, errReportShape
		}
		var it reportItem
		if err := json.Unmarshal(raw, &it); err != nil || it.Token == nil {
			return nil, errReportShape
		}
		items = append(items, it)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		return nil, errReportShape
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errReportShape
	}
	return items, nil
}

// applyReport decides each token of a trusted report and exposes the live keys among them,
// each at most once however often the report names it; it answers the feedback in the
// report's order.
func (s *Server) applyReport(ctx context.Context, items []reportItem) ([]Feedback, error) {
	now := s.now()
	answer := make([]Feedback, len(items))
	hashes := make([]*[32]byte, len(items))
	var lookup [][]byte
	for i, it := range items {
		token := *it.Token
		sum := sha256.Sum256([]byte(token))
		answer[i] = Feedback{TokenHash: hex.EncodeToString(sum[:]), TokenType: keyformat.Redact(it.Type), Label: LabelFalsePositive}
		if _, err := s.types.Parse(token); err != nil {
			continue
		}
		h := s.hasher.Hash(token)
		hashes[i] = &h
		lookup = append(lookup, h[:])
	}
	stored, err := s.store.ByHashes(ctx, lookup)
	if err != nil {
		return nil, err
	}
	byHash := make(map[[32]byte]*store.Key, len(stored))
	for _, k := range stored {
		byHash[[32]byte(k.Hash)] = k
	}
	seen := map[string]bool{}
	changed := 0
	for i, it := range items {
		if hashes[i] == nil {
			continue
		}
		k := byHash[*hashes[i]]
		if k == nil || !keyformat.Equal([32]byte(k.Hash), *hashes[i]) {
			continue
		}
		answer[i].Label = LabelTruePositive
		if seen[k.ID] {
			continue
		}
		seen[k.ID] = true
		if st := verdict.Status(k.Status(now)); st != verdict.StatusActive && st != verdict.StatusGrace || k.ExposedAt != nil {
			continue // dead already, or exposed by an earlier report: nothing to do again
		}
		ok, err := s.store.Expose(ctx, s.exposure(ctx, k, it, now))
		if err != nil {
			return nil, err
		}
		if ok {
			changed++
		}
	}
	if changed > 0 {
		s.notify()
	}
	logging.From(ctx).Info("leak report applied", zap.Int("tokens", len(items)),
		zap.Int("true_positives", countLabel(answer, LabelTruePositive)), zap.Int("keys_exposed", changed))
	return answer, nil
}

// exposure is what exposing k commits: the revocation when its type says so, the events
// and the audit event.
func (s *Server) exposure(ctx context.Context, k *store.Key, it reportItem, now time.Time) store.Exposure {
	action := keyformat.OnExposedRevoke
	if t, ok := s.types.Lookup(k.Type); ok {
		action = t.ExposedAction()
	}
	url := clip(keyformat.Redact(it.URL), maxReportURL)
	source := clip(keyformat.Redact(it.Source), maxReportSource)
	reqID := requestid.From(ctx)
	exposed := events.New(k.AccountID, reqID)
	exposed.Payload = &eventsv1.Event_KeyExposed{KeyExposed: &eventsv1.KeyExposed{KeyId: k.ID, KeyHash: k.Hash, Url: url, Source: source}}
	e := store.Exposure{
		KeyID: k.ID, At: now, Revoke: action == keyformat.OnExposedRevoke,
		Events: []*eventsv1.Event{exposed},
		Actor:  &auditv1.Actor{Type: auditlog.ActorSecretScanning},
		Action: exposedAction,
		Audit: auditlog.Facts{AccountID: k.AccountID, ResourceID: k.ID, Details: map[string]string{
			"on_exposed": string(action), "url": url, "source": source, "token_type": it.Type,
		}},
	}
	if e.Revoke {
		revoked := events.New(k.AccountID, reqID)
		revoked.Payload = &eventsv1.Event_KeyRevoked{KeyRevoked: &eventsv1.KeyRevoked{KeyId: k.ID, KeyHash: k.Hash, Reason: store.RevokeReasonExposed}}
		e.Events = append(e.Events, revoked)
	}
	return e
}

func countLabel(answer []Feedback, label string) int {
	n := 0
	for _, f := range answer {
		if f.Label == label {
			n++
		}
	}
	return n
}

// clip cuts s to at most n bytes, on a UTF-8 boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
