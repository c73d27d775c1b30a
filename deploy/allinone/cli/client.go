package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/latchkey/latchkey/pkg/buildinfo"
)

// APIError is an error answer of the Latchkey API: the envelope of docs/rest.md ("Error
// envelope"), with the HTTP status it came with. Its Error names the message, the code
// and the request id, which is what a person quotes when asking for help.
type APIError struct {
	// Status is the HTTP status of the answer.
	Status int `json:"-"`
	// Code is the stable machine code (`not_found`, `unauthenticated`, …).
	Code string `json:"error"`
	// Message is the API's message for people.
	Message string `json:"message"`
	// RequestID is the answer's X-Request-Id.
	RequestID string `json:"request_id"`
	// hint is what the command line suggests doing about it, if anything.
	hint string
	// foreign: the answer is not Latchkey's envelope (a proxy's error page, another
	// server): only Status is known.
	foreign bool
	// base is the API address asked.
	base string
}

// report is what the command line prints on standard error for e: the message, the code,
// the request id when there is one, the hint; or, for an answer that is not Latchkey's,
// the HTTP status and that it is not.
func (e *APIError) report() string {
	if e.foreign {
		return fmt.Sprintf("latchkey: %s answered HTTP %d %s, not a Latchkey answer (no JSON error envelope): is a proxy or another server at that address?\n",
			e.base, e.Status, http.StatusText(e.Status))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "latchkey: %s\n  code: %s (HTTP %d)\n", e.Message, e.Code, e.Status)
	if e.RequestID != "" {
		fmt.Fprintf(&b, "  request id: %s\n", e.RequestID)
	}
	if e.hint != "" {
		fmt.Fprintf(&b, "  hint: %s\n", e.hint)
	}
	return b.String()
}

func (e *APIError) Error() string {
	if e.RequestID == "" {
		return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d, request id %s)", e.Message, e.Code, e.Status, e.RequestID)
}

// client calls the REST API at base with a bearer token (none when empty). Bodies are JSON
// both ways; an answer other than 2xx is an *APIError.
type client struct {
	base  string
	token string
	http  *http.Client
	// session: token is the login's, which a 401 most likely says has expired.
	session bool
}

// requestTimeout bounds one call; a revocation that waits for gateways asks for less.
const requestTimeout = time.Minute

func newClient(base, token string) *client {
	return &client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: requestTimeout}}
}

// call sends method path?query with body (JSON-encoded unless nil) and extra headers, and
// returns the answer's body as the API wrote it.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body any, header http.Header) (json.RawMessage, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd) //nolint:gosec // the API the user named is the point
	if err != nil {
		return nil, fmt.Errorf("the API address %q: %w", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "latchkey-cli/"+buildinfo.Version())
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.http.Do(req) //nolint:gosec // the API the user named is the point
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("cannot reach the API at %s: %w", c.base, unwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return raw, nil
	}
	apiErr := &APIError{Status: resp.StatusCode, base: c.base}
	if json.Unmarshal(raw, apiErr) != nil || apiErr.Message == "" || apiErr.Code == "" {
		// Not the envelope (a proxy in between, say): the status is all there is.
		apiErr.Code, apiErr.Message = "http_"+fmt.Sprint(resp.StatusCode), http.StatusText(resp.StatusCode)
		apiErr.foreign = true
	}
	if apiErr.RequestID == "" {
		apiErr.RequestID = resp.Header.Get("X-Request-Id")
	}
	if c.session && resp.StatusCode == http.StatusUnauthorized {
		apiErr.hint = "the session may have ended: run `latchkey login` again"
	}
	return nil, apiErr
}

// unwrapURLError drops url.Error's "Post \"http://…\":" prefix, which repeats the address.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
