package sender

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// minter mints an anonymous key and returns its secret.
type minter func(ctx context.Context) (string, error)

// mintTimeout bounds one POST /v1/anonymous-keys.
const mintTimeout = 10 * time.Second

// Retrying a mint the server refuses for now (429 rate_limited, 503 unavailable): at most
// maxMintAttempts attempts within mintBudget, each wait the answer's Retry-After (at least
// minRetryWait; retryWait when it has none). A Retry-After that would end past mintBudget
// is not waited for: the start fails at once with the server's answer.
const (
	maxMintAttempts = 6
	mintBudget      = 15 * time.Second
	retryWait       = time.Second
	minRetryWait    = 100 * time.Millisecond
)

// maxAnswer bounds what is read of an answer of the management API or an error body.
const maxAnswer = 64 << 10

// mintAnonymous returns a minter calling POST <apiURL>/v1/anonymous-keys, which needs no
// credentials and answers {key: {id, …}, secret}. Answers 429 and 503 are tried again as
// the server asks (Retry-After), a few times and for mintBudget at most, unless ctx ends
// first; any other failure is returned at once.
func mintAnonymous(client *http.Client, apiURL string) minter {
	url := apiURL + "/v1/anonymous-keys"
	return func(ctx context.Context) (string, error) {
		budget := time.Now().Add(mintBudget)
		for attempt := 1; ; attempt++ {
			secret, wait, again, err := mintOnce(ctx, client, url)
			switch {
			case err == nil:
				return secret, nil
			case !again:
				return "", err
			case attempt == maxMintAttempts:
				return "", fmt.Errorf("%w; gave up after %d attempts", err, attempt)
			case time.Now().Add(wait).After(budget):
				return "", fmt.Errorf("%w; not tried again: a start waits %s at most (%d attempts)", err, shortDuration(mintBudget), attempt)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", fmt.Errorf("%w; waiting to try again: %w", err, ctx.Err())
			case <-t.C:
			}
		}
	}
}

// mintOnce makes one attempt; when it fails with an answer worth retrying (again), wait is
// how long the server asks to wait.
func mintOnce(ctx context.Context, client *http.Client, url string) (secret string, wait time.Duration, again bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, mintTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		return "", 0, false, fmt.Errorf("sender: minting an anonymous key: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, false, fmt.Errorf("sender: minting an anonymous key at %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return "", 0, false, fmt.Errorf("sender: minting an anonymous key at %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		e := parseEnvelope(resp.StatusCode, body)
		hint := ""
		if resp.StatusCode == http.StatusNotFound {
			hint = " (the server's key profile has no anonymous keys: set a key)"
		}
		ra := resp.Header.Get("Retry-After")
		if ra != "" && resp.StatusCode == http.StatusTooManyRequests {
			hint = " (retry after " + keyformat.Redact(strings.TrimSpace(ra)) + " s)"
		}
		err := fmt.Errorf("sender: minting an anonymous key at %s: %d %s: %s%s", url, resp.StatusCode, e.code, e.message, hint)
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
			return "", 0, false, err
		}
		wait, ok := retryAfter(ra, time.Now())
		if !ok {
			wait = retryWait
		}
		return "", max(wait, minRetryWait), true, err
	}
	var answer struct {
		Key struct {
			ID string `json:"id"`
		} `json:"key"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Secret == "" {
		return "", 0, false, fmt.Errorf("sender: minting an anonymous key at %s: the answer holds no secret", url)
	}
	return answer.Secret, 0, false, nil
}

// maxRetryAfter caps a Retry-After, so that a huge one cannot overflow a Duration.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After value (RFC 9110): a number of seconds or an HTTP-date,
// which counts from now (a date past is no wait). ok is false when value is neither.
func retryAfter(value string, now time.Time) (d time.Duration, ok bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(value, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		return min(time.Duration(min(n, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter), true
	}
	if t, err := http.ParseTime(value); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
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
