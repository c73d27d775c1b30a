package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// minter mints an anonymous key and returns its secret.
type minter func(ctx context.Context) (string, error)

// mintTimeout bounds one POST /v1/anonymous-keys.
const mintTimeout = 10 * time.Second

// maxAnswer bounds what is read of an answer of the management API or an error body.
const maxAnswer = 64 << 10

// mintAnonymous returns a minter calling POST <apiURL>/v1/anonymous-keys, which needs no
// credentials and answers {key: {id, …}, secret}.
func mintAnonymous(client *http.Client, apiURL string) minter {
	return func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, mintTimeout)
		defer cancel()
		url := apiURL + "/v1/anonymous-keys"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
		if err != nil {
			return "", fmt.Errorf("sender: minting an anonymous key: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("sender: minting an anonymous key at %s: %w", url, err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		if err != nil {
			return "", fmt.Errorf("sender: minting an anonymous key at %s: %w", url, err)
		}
		if resp.StatusCode != http.StatusOK {
			e := parseEnvelope(resp.StatusCode, body)
			hint := ""
			if resp.StatusCode == http.StatusNotFound {
				hint = " (the server's key profile has no anonymous keys: set a key)"
			}
			if ra := resp.Header.Get("Retry-After"); ra != "" && resp.StatusCode == http.StatusTooManyRequests {
				hint = " (retry after " + ra + " s)"
			}
			return "", fmt.Errorf("sender: minting an anonymous key at %s: %d %s: %s%s", url, resp.StatusCode, e.code, e.message, hint)
		}
		var answer struct {
			Key struct {
				ID string `json:"id"`
			} `json:"key"`
			Secret string `json:"secret"`
		}
		if err := json.Unmarshal(body, &answer); err != nil || answer.Secret == "" {
			return "", fmt.Errorf("sender: minting an anonymous key at %s: the answer holds no secret", url)
		}
		return answer.Secret, nil
	}
}

// envelope is Latchkey's error body, {error, message, request_id, documentation_url}, or
// what could be made of another body.
type envelope struct {
	code, message, requestID, reason string
}

// parseEnvelope reads an error body. Latchkey's envelope gives its code and message; a body
// in another shape (a profile's own gateway_errors, {"error": "Missing or invalid API key"},
// or no JSON at all) gives a code from the status and its "error" or "message" text, if
// any. Whatever is kept is redacted: a body may quote the key.
func parseEnvelope(status int, body []byte) envelope {
	var raw struct {
		Error     string `json:"error"`
		Message   string `json:"message"`
		RequestID string `json:"request_id"`
		Reason    string `json:"reason"`
	}
	_ = json.Unmarshal(body, &raw)
	e := envelope{code: raw.Error, message: raw.Message, requestID: raw.RequestID}
	if isMachineCode(raw.Reason) {
		e.reason = raw.Reason
	}
	if !isMachineCode(e.code) {
		if e.message == "" {
			e.message = e.code
		}
		e.code = statusCode(status)
	}
	if e.message == "" {
		e.message = http.StatusText(status)
	}
	e.code, e.message, e.requestID = keyformat.Redact(e.code), keyformat.Redact(e.message), keyformat.Redact(e.requestID)
	return e
}

// isMachineCode reports a snake_case code as Latchkey's envelope carries ("unauthenticated").
func isMachineCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// statusCode names an HTTP status as Latchkey's codes do.
func statusCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "permission_denied"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	default:
		return fmt.Sprintf("http_%d", status)
	}
}
