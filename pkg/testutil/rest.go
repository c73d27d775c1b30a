package testutil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// Reply is one HTTP answer, its body decoded when it is a JSON object.
type Reply struct {
	// Status is the HTTP status code.
	Status int
	// Header is the answer's header.
	Header http.Header
	// Body is the JSON object the body holds; nil when it holds none.
	Body map[string]any
	// Raw is the body as it came.
	Raw string
}

// Get walks a path of object keys through the body; each part may itself be dotted, so
// Get("key", "id") and Get("key.id") are the same. It is nil where the path leads nowhere.
func (r Reply) Get(path ...string) any { return Lookup(r.Body, path...) }

// Str is Get as a string; "" when the value is missing or not a string.
func (r Reply) Str(path ...string) string { return Str(r.Body, path...) }

// RequestID is the X-Request-Id header of the answer.
func (r Reply) RequestID() string { return r.Header.Get("X-Request-Id") }

// Message is the envelope's message.
func (r Reply) Message() string { return r.Str("message") }

// OK requires a 200 and returns the body.
func (r Reply) OK(t testing.TB) map[string]any {
	t.Helper()
	require.Equalf(t, http.StatusOK, r.Status, "body: %s", r.Raw)
	return r.Body
}

// RequireError requires the error envelope (docs/rest.md, "Error envelope"): this status,
// this machine code in `error`, a `message`, a `request_id` equal to the X-Request-Id
// header, and the code's `documentation_url` (apierr.DocsBase + code). what, if given,
// names the case in a failure.
func (r Reply) RequireError(t testing.TB, status int, code apierr.Code, what ...any) {
	t.Helper()
	require.Equalf(t, status, r.Status, "%v: body: %s", what, r.Raw)
	require.Equalf(t, string(code), r.Str("error"), "%v: body: %s", what, r.Raw)
	require.NotEmptyf(t, r.Message(), "%v: body: %s", what, r.Raw)
	require.NotEmptyf(t, r.RequestID(), "%v: no X-Request-Id", what)
	require.Equalf(t, r.RequestID(), r.Str("request_id"), "%v: body: %s", what, r.Raw)
	require.Equalf(t, apierr.DocsBase+string(code), r.Str("documentation_url"), "%v: body: %s", what, r.Raw)
}

// Lookup walks a path of object keys through decoded JSON (see Reply.Get).
func Lookup(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		for _, part := range strings.Split(p, ".") {
			obj, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = obj[part]
		}
	}
	return cur
}

// Str is Lookup as a string; "" when the value is missing or not a string.
func Str(m map[string]any, path ...string) string {
	s, _ := Lookup(m, path...).(string)
	return s
}

// Client calls a REST API as a test's user would: JSON bodies, a bearer token, every
// request failing the test it belongs to when it cannot be sent.
type Client struct {
	t testing.TB
	// Base is the API's URL, e.g. "http://127.0.0.1:8080"; Call appends the path to it.
	Base string
	// HTTP sends the requests.
	HTTP *http.Client
}

// NewClient is a client of the API at base for the test t.
func NewClient(t testing.TB, base string) *Client {
	return &Client{t: t, Base: base, HTTP: &http.Client{Timeout: 60 * time.Second}}
}

// Call sends a request to the management API at Base+path and requires what its REST
// contract promises of every answer: a JSON object, never a 500. body is sent verbatim
// when it is a string, as JSON otherwise, and not at all when nil (a nil map included); token, when set, goes in
// "Authorization: Bearer"; headers are name, value pairs set last.
func (c *Client) Call(method, path, token string, body any, headers ...string) Reply {
	c.t.Helper()
	r := c.Send(method, c.Base+path, token, body, headers...)
	require.NotEqualf(c.t, http.StatusInternalServerError, r.Status, "%s %s: %s", method, path, r.Raw)
	require.NotNilf(c.t, r.Body, "%s %s: the body is not a JSON object: %s", method, path, r.Raw)
	return r
}

// Send is Call to any URL (a gateway's OTLP endpoint, say), expecting nothing of the answer.
func (c *Client) Send(method, url, token string, body any, headers ...string) Reply {
	c.t.Helper()
	var rd io.Reader
	if v := reflect.ValueOf(body); v.IsValid() && (v.Kind() == reflect.Map || v.Kind() == reflect.Pointer || v.Kind() == reflect.Slice) && v.IsNil() {
		body = nil // a typed nil (a nil map) is no body too, not "null"
	}
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		require.NoError(c.t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(c.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	require.NoError(c.t, err)
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	r := Reply{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// Must requires the status and returns r.
func (c *Client) Must(status int, r Reply) Reply {
	c.t.Helper()
	require.Equalf(c.t, status, r.Status, "body: %s", r.Raw)
	return r
}

// Password is the password SignUp gives every account.
const Password = "Correct-Horse-Battery-9"

// Account is a signed-up account and its first session.
type Account struct {
	Email, Password string
	// Token is the first session's token.
	Token     string
	AccountID string
	UserID    string
}

var accountSeq atomic.Int64

// SignUp makes an account (POST /v1/accounts) named name, with an email no other test
// uses and Password, and returns it with its first session.
func (c *Client) SignUp(name string) Account {
	c.t.Helper()
	a := Account{
		Email:    fmt.Sprintf("%s-%d-%s@example.com", name, accountSeq.Add(1), Suffix()),
		Password: Password,
	}
	r := c.Must(http.StatusOK, c.Call("POST", "/v1/accounts", "", map[string]any{
		"email": a.Email, "password": a.Password, "account_name": name,
	}))
	a.Token, a.AccountID, a.UserID = r.Str("session.token"), r.Str("account.id"), r.Str("user.id")
	require.NotEmpty(c.t, a.Token, r.Raw)
	return a
}

// Login opens another session for the user (POST /v1/sessions) and returns its token.
func (c *Client) Login(email, password string) string {
	c.t.Helper()
	return c.Must(http.StatusOK, c.Call("POST", "/v1/sessions", "", map[string]any{
		"email": email, "password": password,
	})).Str("session.token")
}

// Project makes a project (POST /v1/projects) with the default environments (dev, stg,
// prd) and these allowed origins, and returns its id.
func (c *Client) Project(token string, origins ...string) string {
	c.t.Helper()
	if origins == nil {
		origins = []string{}
	}
	return c.Must(http.StatusOK, c.Call("POST", "/v1/projects", token, map[string]any{
		"name": "web-app", "allowed_origins": origins,
	})).Str("project.id")
}

// IngestKey creates an ingest key in the project's prd environment (POST /v1/keys) and
// returns its id and secret.
func (c *Client) IngestKey(token, project string) (id, secret string) {
	c.t.Helper()
	r := c.Must(http.StatusOK, c.Call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd", "name": "production-web",
	}))
	return r.Str("key.id"), r.Str("secret")
}

// Verify asks POST /v1/keys:verify about secret, requires a 200 and returns the verdict;
// extra are field, value pairs of the request ("origin", "https://app.example.com").
func (c *Client) Verify(token, secret string, extra ...string) Reply {
	c.t.Helper()
	body := map[string]any{"key": secret}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i]] = extra[i+1]
	}
	return c.Must(http.StatusOK, c.Call("POST", "/v1/keys:verify", token, body))
}

// ClearForm is one way of clearing a field through PATCH: Query goes after the
// resource's path ("?update_mask=metadata" or ""), Body is sent verbatim.
type ClearForm struct{ Name, Query, Body string }

// ClearForms are the ways a client clears a map or list field through PATCH: an empty
// value (empty is "{}" for a map, "[]" for a list), null, or naming the field in
// update_mask and leaving it out (with and without a body that sets something else, which
// the mask then ignores). Each must store the field empty.
func ClearForms(field, empty string) []ClearForm {
	return []ClearForm{
		{"empty", "", `{"` + field + `":` + empty + `}`},
		{"null", "", `{"` + field + `":null}`},
		{"mask, field left out", "?update_mask=" + field, `{}`},
		{"mask, no body", "?update_mask=" + field, ``},
		{"mask and empty", "?update_mask=" + field, `{"` + field + `":` + empty + `}`},
		{"mask, other field sent", "?update_mask=" + field, `{"name":"ignored"}`},
	}
}

// FreeAddr is a 127.0.0.1 address whose port nothing listened on a moment ago, for
// services that must know each other's addresses before they listen. Another process may
// take the port meanwhile: start them under RetryAddrInUse.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// RetryAddrInUse calls start (which picks its ports with FreeAddr) again, up to three
// times in all, while it fails because one of them was taken meanwhile; any other error,
// or a third failure, fails the test.
func RetryAddrInUse(t testing.TB, start func() error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil {
			return
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatalf("did not start: %v", err)
	}
}

// WaitHealthy waits until GET Base/healthz answers 200, failing the test after 30s.
func (c *Client) WaitHealthy() {
	c.t.Helper()
	Eventually(c.t, 30*time.Second, func() bool {
		resp, err := c.HTTP.Get(c.Base + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "GET "+c.Base+"/healthz to answer 200")
}

// Background runs a server until the test ends. run must call listening once, with its
// bound addresses, when it listens, and return when ctx ends. Background returns those
// addresses; or run's error if run returned first, or an error if it did not listen
// within a minute (then nothing is left running). stop, which also runs when the test
// ends, cancels ctx and requires run to return nil within 30s; calls after the first do
// nothing.
func Background(t testing.TB, run func(ctx context.Context, listening func(addrs map[string]string)) error) (addrs map[string]string, stop func(), err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, func(a map[string]string) { ready <- a }) }()
	select {
	case addrs = <-ready:
	case err := <-done:
		cancel()
		return nil, nil, err
	case <-time.After(time.Minute):
		cancel()
		return nil, nil, errors.New("testutil: the server did not listen within a minute")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err, "the server stopped with an error")
			case <-time.After(30 * time.Second):
				t.Error("testutil: the server did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return addrs, stop, nil
}
