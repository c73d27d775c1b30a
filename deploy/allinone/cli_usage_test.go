package allinone

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// TestCLIUsage runs the built latchkey where no server is needed, or none answers: bad
// usage, secrets pasted where they do not belong, a session that cannot be ended.
func TestCLIUsage(t *testing.T) {
	cli := buildCLI(t)
	reg, err := keyformat.LoadProfile("default")
	require.NoError(t, err)
	secret, err := reg.Generate("ingest")
	require.NoError(t, err)

	t.Run("a key passed as an argument is never echoed", func(t *testing.T) {
		for _, args := range [][]string{
			{"keys", "verify", secret},
			{"keys", "import", "--type", "ingest", secret},
			{"login", "--email", "a@example.com", secret},
			{"logout", secret},
			{"audit", "verify", secret},
			{"keys", "get", "key_1", secret},
		} {
			out, errs, status := cli.run("", args...)
			require.Equal(t, 2, status, "%v: %s", args, errs)
			require.Empty(t, out)
			require.NotContains(t, errs, secret[len("lk_ing_"):], args)
			require.Regexp(t, `got \d+`, errs, args)
		}
		// scan names the path it cannot read, redacted.
		_, errs, status := cli.run("", "scan", secret)
		require.Equal(t, 2, status, errs)
		require.NotContains(t, errs, secret[len("lk_ing_"):])
		require.Contains(t, errs, "lk_ing_"+keyformat.Redacted)
	})
}

// writeFile writes a test's file, its directories made.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
}

// TestCLIUsageExit: bad usage exits 2 wherever it is; an API error prints nothing on
// standard output.
func TestCLIUsageExit(t *testing.T) {
	cli := buildCLI(t)
	for _, args := range [][]string{{"nosuchcmd"}, {"keys", "nosuchcmd"}, {"keys", "create", "--bogus"}, {"keys", "get"}, {"completion", "nosuchshell"}} {
		out, errs, status := cli.run("", args...)
		require.Equal(t, 2, status, "%v: %s", args, errs)
		require.Empty(t, out, args)
		require.Contains(t, errs, "Run 'latchkey --help' for usage.", args)
	}
	// No answer from the API: the error on stderr, nothing on stdout (no table header).
	cli.env = []string{"LATCHKEY_API=http://127.0.0.1:1", "LATCHKEY_TOKEN=lks_test"}
	out, errs, status := cli.run("", "audit", "tail")
	require.Equal(t, 1, status, errs)
	require.Empty(t, out)
	require.Contains(t, errs, "cannot reach the API")
}

// TestCLIUsageSession: logout forgets the session even when the server cannot be told; a
// session file others can read is refused; an expired one is not sent.
func TestCLIUsageSession(t *testing.T) {
	cli := buildCLI(t)
	file := filepath.Join(cli.config, "latchkey", "session.json")
	keep := func(text string, mode os.FileMode) {
		t.Helper()
		writeFile(t, file, text)
		require.NoError(t, os.Chmod(file, mode))
	}
	live := `{"api":"http://127.0.0.1:1","email":"a@example.com","token":"lks_x","expires_at":"2999-01-01T00:00:00Z"}`

	// The API unreachable: the file goes anyway, with a warning, exit 1.
	keep(live, 0o600)
	out, errs, status := cli.run("", "logout")
	require.Equal(t, 1, status, errs)
	require.Empty(t, out)
	require.Contains(t, errs, "cannot reach the API")
	require.Contains(t, errs, "session may stay live")
	require.NoFileExists(t, file)

	// A corrupt file: the same.
	keep("{not json", 0o600)
	_, errs, status = cli.run("", "logout")
	require.Equal(t, 1, status, errs)
	require.Contains(t, errs, "is not a session file")
	require.NoFileExists(t, file)
	require.Contains(t, cli.ok("", "logout"), "Not logged in.")

	// Readable by others: refused, as ssh refuses such a key; logout still removes it.
	keep(live, 0o644)
	_, errs, status = cli.run("", "projects", "list")
	require.Equal(t, 1, status, errs)
	require.Contains(t, errs, "is readable by others (mode 0644)")
	_, _, status = cli.run("", "logout")
	require.Equal(t, 1, status)
	require.NoFileExists(t, file)

	// Expired: said so, without calling the server (which would be "cannot reach").
	keep(`{"api":"http://127.0.0.1:1","email":"a@example.com","token":"lks_x","expires_at":"2001-01-01T00:00:00Z"}`, 0o600)
	_, errs, status = cli.run("", "projects", "list")
	require.Equal(t, 1, status, errs)
	require.Contains(t, errs, "the session expired at 2001-01-01 00:00:00 UTC: run `latchkey login")
	require.NotContains(t, errs, "cannot reach")
	require.Contains(t, cli.ok("", "logout"), "Logged out of http://127.0.0.1:1")
	require.NoFileExists(t, file)

	// LATCHKEY_TOKEN needs no session: a bad session file is no obstacle to it.
	keep("{not json", 0o600)
	cli.env = []string{"LATCHKEY_TOKEN=lks_test", "LATCHKEY_API=http://127.0.0.1:1"}
	_, errs, status = cli.run("", "projects", "list")
	require.Equal(t, 1, status, errs)
	require.Contains(t, errs, "cannot reach the API at http://127.0.0.1:1")
}

// TestCLIUsageScan: scan follows links named and links to files, not links to
// directories; reports each unreadable file and goes on (exit 2 over 1); skips files over
// --max-size with a note.
func TestCLIUsageScan(t *testing.T) {
	cli := buildCLI(t)
	reg, err := keyformat.LoadProfile("default")
	require.NoError(t, err)
	key, err := reg.Generate("ingest")
	require.NoError(t, err)
	shown := key[:len("lk_ing_")+8] + "…"

	dir, elsewhere := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(elsewhere, "secret.env"), "K="+key+"\n")
	writeFile(t, filepath.Join(elsewhere, "sub", "other.env"), "K="+key+"\n")
	tree := filepath.Join(dir, "tree")
	writeFile(t, filepath.Join(tree, "clean.txt"), "nothing\n")
	require.NoError(t, os.Symlink(filepath.Join(elsewhere, "secret.env"), filepath.Join(tree, "linked.env")))
	require.NoError(t, os.Symlink(filepath.Join(elsewhere, "sub"), filepath.Join(tree, "linked-dir")))
	require.NoError(t, os.Symlink(tree, filepath.Join(tree, "loop")))

	// A link to a file inside a tree is read; links to directories are named, not walked.
	out, errs, status := cli.run("", "scan", tree)
	require.Equal(t, 1, status, errs)
	require.Equal(t, filepath.Join(tree, "linked.env")+":1:3: ingest "+shown+" verified\n", out)
	require.Contains(t, errs, filepath.Join(tree, "linked-dir")+": a symbolic link to a directory, not followed")
	require.Contains(t, errs, filepath.Join(tree, "loop")+": a symbolic link to a directory, not followed")

	// A link named on the command line is followed, to a file or a directory.
	named := filepath.Join(dir, "named.env")
	require.NoError(t, os.Symlink(filepath.Join(elsewhere, "secret.env"), named))
	out, errs, status = cli.run("", "scan", named, filepath.Join(tree, "linked-dir"))
	require.Equal(t, 1, status, errs)
	require.Equal(t, named+":1:3: ingest "+shown+" verified\n"+
		filepath.Join(tree, "linked-dir", "other.env")+":1:3: ingest "+shown+" verified\n", out)

	// Unreadable things are each reported; the scan goes on; exit 2 wins over 1. (A link
	// to /proc/self/mem: a regular file whose first byte no process can read, root or not.)
	broken := filepath.Join(dir, "broken")
	require.NoError(t, os.MkdirAll(broken, 0o700))
	require.NoError(t, os.Symlink("/proc/self/mem", filepath.Join(broken, "a-mem")))
	writeFile(t, filepath.Join(broken, "z.env"), "K="+key+"\n")
	out, errs, status = cli.run("", "scan", filepath.Join(dir, "missing"), broken)
	require.Equal(t, 2, status, errs)
	require.Equal(t, filepath.Join(broken, "z.env")+":1:3: ingest "+shown+" verified\n", out, "the scan went on")
	require.Contains(t, errs, filepath.Join(dir, "missing")+": no such file or directory")
	require.Contains(t, errs, "read "+filepath.Join(broken, "a-mem")+": ")

	// Over --max-size: skipped with a note (a file), refused (standard input).
	out, errs, status = cli.run("", "scan", "--max-size", "10", filepath.Join(elsewhere, "secret.env"))
	require.Equal(t, 0, status, errs)
	require.Empty(t, out)
	require.Contains(t, errs, fmt.Sprintf("skipped, %d bytes is over --max-size 10", len("K="+key+"\n")))
	_, errs, status = cli.run("K="+key, "scan", "--max-size", "10")
	require.Equal(t, 2, status, errs)
	require.Contains(t, errs, "standard input: more than --max-size 10 bytes")
}

// TestCLIUsageInput: values that would be sent wrong are refused before anything is sent:
// bytes that are not UTF-8, API addresses with a query or /v1; an answer that is not
// Latchkey's is named as such.
func TestCLIUsageInput(t *testing.T) {
	cli := buildCLI(t)
	cli.env = []string{"LATCHKEY_TOKEN=lks_test"}
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"audit", "tail", "--action", "\xff"}, "the value of --action is not valid UTF-8"},
		{[]string{"projects", "create", "w\xffb"}, "argument 1 of latchkey projects create is not valid UTF-8"},
		{[]string{"projects", "list", "--api", "http://h/?x=1"}, "has a query or a fragment"},
		{[]string{"projects", "list", "--api", "http://h#top"}, "has a query or a fragment"},
		{[]string{"projects", "list", "--api", "http://h:8080/v1"}, "ends in /v1: leave it out"},
		{[]string{"projects", "list", "--api", "http://h:8080/v1/"}, "ends in /v1: leave it out"},
		{[]string{"projects", "list", "--api", "ftp://h"}, "is not an http:// or https:// URL"},
		{[]string{"projects", "list", "--api", "http:///x"}, "has no host"},
		{[]string{"login", "--email", "a@b.c", "--api", "http://u:p@h"}, "holds user info"},
	} {
		out, errs, status := cli.run("pw\n", c.args...)
		require.Equal(t, 2, status, "%q: %s", c.args, errs)
		require.Empty(t, out)
		require.Contains(t, errs, c.says, "%q", c.args)
		require.NotContains(t, errs, "\ufffd")
	}
	// scan's arguments are paths, which may be any bytes.
	_, errs, status := cli.run("", "scan", filepath.Join(t.TempDir(), "no-such-\xff"))
	require.Equal(t, 2, status)
	require.Contains(t, errs, "no such file")

	// A trailing "/" is trimmed; a proxy's answer is named as not Latchkey's, without an
	// empty request id.
	var asked lockedBuffer
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = asked.Write([]byte(r.URL.String() + "\n"))
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>bad gateway</html>")
	}))
	defer proxy.Close()
	out, errs, status := cli.run("", "projects", "list", "--api", proxy.URL+"/")
	require.Equal(t, 1, status, errs)
	require.Empty(t, out)
	require.Equal(t, "latchkey: "+proxy.URL+" answered HTTP 502 Bad Gateway, not a Latchkey answer (no JSON error envelope): is a proxy or another server at that address?\n", errs)
	require.Equal(t, "/v1/projects\n", asked.String())
}

// TestCLIUsageStdin: a password or a key read from standard input is one line of at most
// 64 KiB; more is refused before anything is sent.
func TestCLIUsageStdin(t *testing.T) {
	cli := buildCLI(t)
	cli.env = []string{"LATCHKEY_API=http://127.0.0.1:1", "LATCHKEY_TOKEN=lks_test"}
	huge := strings.Repeat("a", 64<<10+1)
	for _, args := range [][]string{
		{"keys", "verify"},
		{"keys", "import", "--type", "ingest", "--project", "prj_1", "--environment", "dev"},
		{"login", "--email", "a@example.com"},
	} {
		_, errs, status := cli.run(huge, args...)
		require.Equal(t, 2, status, "%v: %s", args, errs)
		require.Contains(t, errs, "on standard input is over 64 KiB", args)
	}
	// 64 KiB is read, and sent.
	_, errs, status := cli.run(huge[1:]+"\n", "keys", "verify")
	require.Equal(t, 1, status, errs)
	require.Contains(t, errs, "cannot reach the API")
}

// TestCLIUsageHelp: help shows ids as the API makes them and each default once.
func TestCLIUsageHelp(t *testing.T) {
	cli := buildCLI(t)
	for _, path := range [][]string{{"keys", "create"}, {"keys", "list"}, {"servers", "create"}} {
		out := cli.ok("", append(path, "--help")...)
		require.Contains(t, out, "--project prj_01…", path)
		require.NotContains(t, out, "proj_", path)
	}
	out := cli.ok("", "scan", "--help")
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, "--profile") && strings.Contains(l, "string") {
			require.Equal(t, 1, strings.Count(l, "default \""), l)
		}
	}
}

// TestCLIUsageFollow: audit tail --follow outlasts an API that drops connections for a
// while: it says so once, retries with backoff, and prints the event that comes after.
func TestCLIUsageFollow(t *testing.T) {
	cli := buildCLI(t)
	var mu sync.Mutex
	calls := 0
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		switch {
		case n <= 2: // the first page, then the catch-up: nothing yet
			_, _ = io.WriteString(w, `{"events":[]}`)
		case n <= 5: // the connection drops
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		default:
			_, _ = io.WriteString(w, `{"events":[{"id":"evt_after","time":"2026-01-01T00:00:00Z","action":"keys.create","result":"ok"}]}`)
		}
	}))
	defer api.Close()
	cli.env = []string{"LATCHKEY_API=" + api.URL, "LATCHKEY_TOKEN=lks_test"}
	cmd := cli.cmd("", "audit", "tail", "--follow", "--interval", "100ms", "--json")
	var out, errs lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "evt_after") }, 20*time.Second, 20*time.Millisecond,
		"stdout: %s\nstderr: %s", out.String(), errs.String())
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "Ctrl-C ends a follow cleanly: %s", errs.String())
	require.Equal(t, 1, strings.Count(errs.String(), "retrying with backoff"), errs.String())
	require.Contains(t, errs.String(), "(the API answers again; following)")
}

// A command blocked where it cannot see the first Ctrl-C (scan waiting on a FIFO nobody
// writes to) ends at the second.
func TestCLIUsageSecondInterruptEnds(t *testing.T) {
	cli := buildCLI(t)
	fifo := filepath.Join(t.TempDir(), "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	cmd := cli.cmd("", "scan", fifo)
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()

	// Opening the write end without blocking succeeds once scan has the FIFO open to read:
	// by then its signal handling is in place. Nothing is written: scan waits.
	var w *os.File
	require.Eventually(t, func() bool {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		w = f
		return err == nil
	}, 20*time.Second, 10*time.Millisecond, "scan never opened the FIFO")
	defer w.Close()

	// Ctrl-C, then again each 100 ms (the first takes a moment to be acted on) until it ends.
	deadline := time.After(20 * time.Second)
	for {
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		select {
		case <-done:
			return
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("latchkey scan <fifo> ignored every interrupt after the first")
		}
	}
}
