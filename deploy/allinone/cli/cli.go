// Package cli is the `latchkey` command line: `dev` runs the whole suite on embedded
// defaults; the other commands call a running Latchkey's REST API (docs/rest.md) as the
// user `login` signed in, and `scan` finds keys in files offline.
//
// Output is a table for people, or with --json the API's JSON answer unchanged, for
// scripts. An error answer of the API prints its message, code and request id on standard
// error; an answer that is not Latchkey's says so. Everything written on standard error
// goes through keyformat.Redact (redacting), and argument errors count, never quote.
// Exit status: 0 on success, 1 on an error or a negative finding (a key found by scan, a
// key that does not verify, an audit chain that does not verify), 2 on bad usage (and for
// scan, anything it could not read, which wins over a finding).
package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/latchkey/latchkey/pkg/buildinfo"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

// DefaultAPI is the REST address of `latchkey dev` and `make run`, used when neither
// --api, LATCHKEY_API nor a login names one.
const DefaultAPI = "http://127.0.0.1:8080"

// Environment variables the command line reads.
const (
	// EnvAPI overrides the API address of the login (a --api flag wins over it).
	EnvAPI = "LATCHKEY_API"
	// EnvToken is a credential to use instead of the login's session: a session token or
	// an account key (lk_acct_…), for scripts and CI.
	EnvToken = "LATCHKEY_TOKEN" //nolint:gosec // a variable's name, not a credential
	// EnvPassword is read by `login` instead of standard input.
	EnvPassword = "LATCHKEY_PASSWORD"
)

// exitStatus is an error that only sets the exit status: what there was to say is said.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is bad usage: a missing flag, a bad value. It exits 2.
type usageError struct{ error }

// app is one run of the command line: its streams and its global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// api is --api, empty when not given.
	api string
	// json is --json: print the API's JSON instead of tables.
	json bool
}

// Main runs the command line with args (without the program name) and returns its exit
// status. ctx ends the run (main ties it to SIGINT and SIGTERM).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	stderr = redacting{stderr}
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var status exitStatus
	var usage usageError
	var apiErr *APIError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &usage):
		_, _ = fmt.Fprintf(stderr, "latchkey: %v\nRun 'latchkey --help' for usage.\n", usage.error)
		return 2
	case errors.As(err, &apiErr):
		_, _ = io.WriteString(stderr, apiErr.report())
		return 1
	case errors.Is(err, context.Canceled):
		return 130 // interrupted, as a shell reports SIGINT
	default:
		_, _ = fmt.Fprintf(stderr, "latchkey: %v\n", err)
		return 1
	}
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "latchkey",
		Short: "Latchkey: issue, rotate, revoke and audit API keys",
		Long: `latchkey manages a Latchkey server's projects, keys, servers and audit log, and runs
the whole suite on one machine for development (latchkey dev).

Log in once; later commands use the session kept in your configuration directory:

  latchkey login --api http://127.0.0.1:8080 --email you@example.com

Every listing prints a table, or with --json the API's JSON answer.`,
		Version:       buildinfo.Line("latchkey"),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentPreRunE = checkUTF8
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().StringVar(&a.api, "api", "", "the Latchkey REST API's address (default: the login's, "+EnvAPI+", or "+DefaultAPI+")")
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print the API's JSON answer instead of a table")
	root.AddCommand(a.devCmd(), a.loginCmd(), a.logoutCmd(), a.projectsCmd(), a.keysCmd(), a.serversCmd(), a.auditCmd(), a.scanCmd())
	holdsOnly(root)
	// cobra's `completion` (bash|zsh|fish|powershell), made now so that an unknown shell
	// is bad usage too.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			holdsOnly(c)
		}
	}
	return root
}

// group is a command that only holds subcommands; run alone it prints its help.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short}
	c.AddCommand(subs...)
	holdsOnly(c)
	return c
}

// holdsOnly makes c, a command that holds subcommands, print its help when run alone and
// refuse an unknown subcommand as bad usage (exit 2), which cobra's own check does not.
func holdsOnly(c *cobra.Command) {
	c.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unknown command %q for %s", args[0], c.CommandPath())}
		}
		return nil
	}
	c.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
}

// noArgs and exactArgs are cobra's checks, as usage errors. They say how many arguments
// came, never what they were: a key pasted as an argument by mistake must not be echoed.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("%s takes no arguments; got %d", c.CommandPath(), len(args))}
	}
	return nil
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s takes %s; got %d arguments", c.CommandPath(), what, len(args))}
		}
		return nil
	}
}

// pathArgs annotates a command whose arguments are file paths, which may be any bytes.
const pathArgs = "latchkey/path-args"

// checkUTF8 refuses a flag value or an argument that is not UTF-8 (exit 2), rather than let
// JSON and URLs silently turn its bytes into U+FFFD; file paths (pathArgs) are exempt. It
// names the flag or the argument's position, never the value.
func checkUTF8(c *cobra.Command, args []string) error {
	var bad error
	c.Flags().Visit(func(f *pflag.Flag) {
		if bad == nil && !utf8.ValidString(f.Value.String()) {
			bad = usageError{fmt.Errorf("the value of --%s is not valid UTF-8", f.Name)}
		}
	})
	if bad != nil || c.Annotations[pathArgs] != "" {
		return bad
	}
	for i, arg := range args {
		if !utf8.ValidString(arg) {
			return usageError{fmt.Errorf("argument %d of %s is not valid UTF-8", i+1, c.CommandPath())}
		}
	}
	return nil
}

// redacting is standard error as the command line writes it: every key and session token
// in what is written (keyformat.Redact) is replaced by its prefix and "[redacted]". Every
// message goes through it, whichever command wrote it, so an argument, a path or an API's
// message that quotes a secret is never echoed in full. Each write is one whole message
// (fmt.Fprint*), so a key is never split between two writes.
type redacting struct{ w io.Writer }

func (r redacting) Write(p []byte) (int, error) {
	if _, err := io.WriteString(r.w, keyformat.Redact(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// client is an API client with the credentials to use: LATCHKEY_TOKEN, else the login's
// session token when the API is the one logged in to.
func (a *app) client() (*client, error) {
	tok := os.Getenv(EnvToken)
	s, err := loadSession()
	if err != nil && tok == "" {
		return nil, err
	}
	if err != nil {
		s = nil // LATCHKEY_TOKEN is the credential: an unusable session file is not needed
	}
	api := a.api
	if api == "" {
		api = os.Getenv(EnvAPI)
	}
	if api == "" && s != nil {
		api = s.API
	}
	if api == "" {
		api = DefaultAPI
	}
	api, err = normalAPI(api)
	if err != nil {
		return nil, err
	}
	if tok != "" {
		return newClient(api, tok), nil
	}
	switch {
	case s == nil:
		return nil, fmt.Errorf("not logged in: run `latchkey login --api %s --email you@example.com` (or set %s)", api, EnvToken)
	case s.API != api:
		// The session token is sent only where it came from.
		return nil, fmt.Errorf("logged in to %s, not %s: run `latchkey login --api %s --email …`", s.API, api, api)
	}
	if s.expired() {
		return nil, fmt.Errorf("the session expired at %s UTC: run `latchkey login --api %s --email %s`", s.ExpiresAt.UTC().Format(time.DateTime), s.API, s.Email)
	}
	c := newClient(api, s.Token)
	c.session = true
	return c, nil
}

// normalAPI checks an API address (--api, LATCHKEY_API) before any token goes to it, and
// returns it without a trailing "/": an http:// or https:// URL with a host, no user
// info, query or fragment, and no /v1 (the commands add it; a path before it, a proxy's
// prefix, is kept). Anything else is bad usage.
func normalAPI(api string) (string, error) {
	bad := func(why string) (string, error) {
		return "", usageError{fmt.Errorf("the API address %q %s", api, why)}
	}
	u, err := url.Parse(api)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		return bad("is not an http:// or https:// URL")
	case u.Host == "":
		return bad("has no host")
	case u.User != nil:
		return bad("holds user info: give credentials with login or " + EnvToken)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(api, "#"):
		return bad("has a query or a fragment: give the address only, e.g. " + DefaultAPI)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if u.Path == "/v1" || strings.HasSuffix(u.Path, "/v1") {
		return bad("ends in /v1: leave it out, the commands add it")
	}
	u.RawPath = ""
	return u.String(), nil
}

// maxStdinLine bounds the line a command reads from standard input (a password, a key):
// far above any real one, far below what a mistaken pipe could send.
const maxStdinLine = 64 << 10

// firstLine reads the first line of standard input, what names it in errors; a line over
// maxStdinLine bytes is bad usage, refused before anything is sent.
func (a *app) firstLine(what string) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(a.stdin, maxStdinLine+1)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading %s from standard input: %w", what, err)
	}
	if len(strings.TrimRight(line, "\r\n")) > maxStdinLine {
		return "", usageError{fmt.Errorf("%s on standard input is over %d KiB", what, maxStdinLine>>10)}
	}
	return line, nil
}

// get decodes a JSON answer into v.
func get[T any](raw json.RawMessage) (T, error) {
	var v T
	err := json.Unmarshal(raw, &v)
	if err != nil {
		err = fmt.Errorf("the API's answer is not what this version of latchkey expects: %w", err)
	}
	return v, err
}

// show GETs path with query q (nil for none) from the API and, under --json, prints the
// answer as it came: printed then tells the caller it has nothing left to do; otherwise
// the caller renders raw for people.
func (a *app) show(ctx context.Context, path string, q url.Values) (raw json.RawMessage, printed bool, err error) {
	cl, err := a.client()
	if err != nil {
		return nil, false, err
	}
	if raw, err = cl.call(ctx, http.MethodGet, path, q, nil, nil); err != nil {
		return nil, false, err
	}
	printed, err = a.emit(raw)
	return raw, printed, err
}

// emit prints raw as JSON under --json and returns true; else it returns false and the
// caller prints for people.
func (a *app) emit(raw json.RawMessage) (bool, error) {
	if !a.json {
		return false, nil
	}
	return true, a.writeJSON(raw)
}

// writeJSON prints raw indented, one value.
func (a *app) writeJSON(raw json.RawMessage) error {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(raw); err != nil {
		return err
	}
	_, err := io.WriteString(a.stdout, b.String())
	return err
}

// table writes rows aligned in columns under upper-case headers; flush it when done.
func (a *app) table(headers ...string) *tabwriter.Writer {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(w, strings.Join(headers, "\t"))
	return w
}

// row writes one row of a table.
func row(w io.Writer, cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	_, _ = fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// fields prints name: value lines, aligned, for one object.
func (a *app) fields(pairs ...string) error {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		v := pairs[i+1]
		if v == "" {
			v = "-"
		}
		_, _ = fmt.Fprintf(w, "%s:\t%s\n", pairs[i], v)
	}
	return w.Flush()
}

// printf writes to standard output.
func (a *app) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(a.stdout, format, args...)
}

// when shows an API timestamp (RFC 3339, null when unset) for people, in UTC to the second.
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// moreHint tells a person that a listing has another page, on standard error so that the
// table stays a table.
func (a *app) moreHint(next string) {
	if next != "" && !a.json {
		_, _ = fmt.Fprintf(a.stderr, "(more: --page-token %s)\n", next)
	}
}

// setIf adds a query parameter when v is not empty.
func setIf(q url.Values, name, v string) {
	if v != "" {
		q.Set(name, v)
	}
}
