package sender

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// start starts a sender the test shuts down.
func start(t *testing.T, o Options) *Sender {
	t.Helper()
	s, err := Start(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Shutdown(context.Background())) })
	return s
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // a test's own file
	require.NoError(t, err)
	return string(b)
}

// The key is the option's, else the variable's, else the file's, else a minted one; each
// later source is used only when every earlier one is empty.
func TestKeyResolutionOrder(t *testing.T) {
	clearEnv(t)
	reg := keyformat.Default()
	mint, gw := newMintServer(t, reg), newGateway(t)
	dir := t.TempDir()
	log, logs := newLog()
	opts := func() Options { return Options{Dir: dir, APIURL: mint.URL, Endpoint: gw.URL, Logger: log} }
	file := filepath.Join(dir, ".latchkey", "anon_key")

	// Nothing set: a key is minted and stored, 0600 in a 0700 directory kept out of git.
	s := start(t, opts())
	require.Equal(t, SourceMinted, s.Key().Source)
	require.True(t, s.Key().Anonymous)
	require.Equal(t, "anonymous", s.Key().Type)
	require.Equal(t, file, s.Key().File)
	require.Equal(t, "LATCHKEY_API_KEY", s.Key().EnvVar)
	require.EqualValues(t, 1, mint.mints.Load())
	anon := strings.TrimSpace(readFile(t, file))
	require.Equal(t, displayPrefix(t, reg, anon), s.Key().DisplayPrefix)
	require.Equal(t, anon+"\n", readFile(t, file))
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	di, err := os.Stat(filepath.Dir(file))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	require.Equal(t, gitignore, readFile(t, filepath.Join(dir, ".latchkey", ".gitignore")))
	require.ElementsMatch(t, []string{".gitignore", "anon_key"}, entries(t, filepath.Dir(file)), "no temporary file is left, and the lock is outside the project")
	require.Equal(t, []string{".latchkey"}, entries(t, dir))
	if runtime.GOOS == "linux" {
		locks, err := filepath.Glob(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "latchkey", "sender", "*.lock"))
		require.NoError(t, err)
		require.Len(t, locks, 1, "the mint lock is in the user's cache directory")
	}
	require.Equal(t, keyformat.DefaultProfile, s.Key().Profile)

	// The file is reused: no second mint.
	s = start(t, opts())
	require.Equal(t, SourceFile, s.Key().Source)
	require.Equal(t, displayPrefix(t, reg, anon), s.Key().DisplayPrefix)
	require.EqualValues(t, 1, mint.mints.Load())

	// The variable beats the file.
	envKey := generate(t, reg, "ingest")
	t.Setenv("LATCHKEY_API_KEY", " "+envKey+"\n")
	s = start(t, opts())
	require.Equal(t, SourceEnv, s.Key().Source)
	require.Equal(t, displayPrefix(t, reg, envKey), s.Key().DisplayPrefix)
	require.False(t, s.Key().Anonymous)

	// The option beats the variable.
	optKey := generate(t, reg, "ingest")
	o := opts()
	o.APIKey = optKey
	s = start(t, o)
	require.Equal(t, SourceOption, s.Key().Source)
	require.Equal(t, displayPrefix(t, reg, optKey), s.Key().DisplayPrefix)

	// The key travels as a bearer token.
	require.NoError(t, s.ForceFlush(context.Background()))
	require.EqualValues(t, 1, mint.mints.Load())
	for _, k := range []string{anon, envKey, optKey} {
		require.NotContains(t, logs.String(), k, "a key in the log")
	}
}

// Under "typed" the variable is GLASSTRACE_API_KEY and the file .glasstrace/anon_key; a
// key of another profile is refused, naming the rule and not the key.
func TestProfileSettings(t *testing.T) {
	clearEnv(t)
	typed, err := keyformat.LoadProfile("typed")
	require.NoError(t, err)
	mint, gw := newMintServer(t, typed), newGateway(t)
	dir := t.TempDir()
	s := start(t, Options{Profile: "typed", Dir: dir, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
	require.Equal(t, filepath.Join(dir, ".glasstrace", "anon_key"), s.Key().File)
	require.Equal(t, "GLASSTRACE_API_KEY", s.Key().EnvVar)
	require.True(t, strings.HasPrefix(s.Key().DisplayPrefix, "gt_anon_"))

	dev := generate(t, typed, "ingest")
	t.Setenv("GLASSTRACE_API_KEY", dev)
	s = start(t, Options{Profile: "typed", Dir: dir, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
	require.Equal(t, SourceEnv, s.Key().Source)
	require.True(t, strings.HasPrefix(s.Key().DisplayPrefix, "gt_dev_"))

	lk := generate(t, keyformat.Default(), "ingest")
	t.Setenv("GLASSTRACE_API_KEY", lk)
	_, err = Start(context.Background(), Options{Profile: "typed", Dir: dir, Endpoint: gw.URL})
	require.ErrorContains(t, err, `the key in GLASSTRACE_API_KEY is not a key of profile "typed"`)
	require.ErrorIs(t, err, keyformat.ErrUnknownPrefix)
	require.NotContains(t, err.Error(), lk[len("lk_ing_"):])

	// A profile without anonymous keys needs a key and says where to put it.
	t.Setenv("GLASSTRACE_API_KEY", "")
	_, err = Start(context.Background(), Options{Profile: "envkeys", Dir: t.TempDir(), APIURL: mint.URL, Endpoint: gw.URL})
	require.ErrorContains(t, err, "set TRACELOOP_API_KEY or Options.APIKey")
	require.EqualValues(t, 1, mint.mints.Load())
}

// A key that does not parse or cannot ingest is refused at start, whatever its source.
func TestBadKeys(t *testing.T) {
	clearEnv(t)
	reg := keyformat.Default()
	gw := newGateway(t)
	good := generate(t, reg, "ingest")
	forged := good[:len(good)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(good, "a")]
	account := generate(t, reg, "account")
	for name, tc := range map[string]struct {
		key, env, want string
		is             error
	}{
		"forged option":  {key: forged, want: "the key in Options.APIKey is not a key of profile \"default\"", is: keyformat.ErrChecksum},
		"garbage option": {key: "hello", want: "Options.APIKey", is: keyformat.ErrUnknownPrefix},
		"forged env":     {env: forged, want: "the key in LATCHKEY_API_KEY", is: keyformat.ErrChecksum},
		"account key":    {key: account, want: `is a "account" key, which cannot send data`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("LATCHKEY_API_KEY", tc.env)
			_, err := Start(context.Background(), Options{APIKey: tc.key, Endpoint: gw.URL, Dir: t.TempDir()})
			require.ErrorContains(t, err, tc.want)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
			for _, k := range []string{forged, account} {
				require.NotContains(t, err.Error(), k[len(k)-20:])
			}
		})
	}
}

// A key file that holds no anonymous key is an error and stays as it is; nothing is minted.
func TestCorruptKeyFile(t *testing.T) {
	clearEnv(t)
	reg := keyformat.Default()
	mint, gw := newMintServer(t, reg), newGateway(t)
	anon := generate(t, reg, "anonymous")
	ingest := generate(t, reg, "ingest")
	for name, tc := range map[string]struct{ content, want string }{
		"empty":           {"", "it is empty"},
		"blank":           {" \n\n", "it is empty"},
		"garbage":         {"not a key\n", "unknown key prefix"},
		"truncated":       {anon[:len(anon)-3] + "\n", "malformed key"},
		"ingest key":      {ingest + "\n", `it holds a "ingest" key`},
		"over long":       {strings.Repeat("x", maxKeyFile+1), "too long"},
		"another profile": {generate(t, mustProfile(t, "typed"), "anonymous"), "unknown key prefix"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, ".latchkey", "anon_key")
			require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			_, err := Start(context.Background(), Options{Dir: dir, APIURL: mint.URL, Endpoint: gw.URL})
			require.ErrorIs(t, err, errNotAnonymousFile)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, path)
			require.ErrorContains(t, err, "delete it to mint a new anonymous key")
			require.Equal(t, tc.content, readFile(t, path), "the file is left as it was")
			if len(tc.content) > 20 {
				require.NotContains(t, err.Error(), strings.TrimSpace(tc.content)[8:])
			}
		})
	}
	require.Zero(t, mint.mints.Load())
}

func mustProfile(t testing.TB, name string) *keyformat.Registry {
	t.Helper()
	r, err := keyformat.LoadProfile(name)
	require.NoError(t, err)
	return r
}

// A failed mint stores nothing and says why; a key of another profile is not stored.
func TestMintFailures(t *testing.T) {
	clearEnv(t)
	reg := keyformat.Default()
	mint, gw := newMintServer(t, reg), newGateway(t)
	for name, tc := range map[string]struct {
		answer func(w http.ResponseWriter)
		want   string
	}{
		"rate limited": {func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"rate_limited","message":"too many anonymous keys from this address","tier":"ip"}`))
		}, "429 rate_limited: too many anonymous keys from this address (retry after 60 s)"},
		"no anonymous type": {func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not_found","message":"no anonymous key type"}`))
		}, "(the server's key profile has no anonymous keys: set a key)"},
		"no secret": {func(w http.ResponseWriter) {
			_, _ = w.Write([]byte(`{"key":{}}`))
		}, "the answer holds no secret"},
		"a key of no built-in profile": {func(w http.ResponseWriter) {
			_, _ = fmt.Fprintf(w, `{"key":{"id":"key_1"},"secret":%q}`, "xx_anon_"+strings.Repeat("a", 40))
		}, `the key POST /v1/anonymous-keys answered (prefix "xx_anon_") is an anonymous key of no built-in profile ("default" and "typed")`},
		"a non-anonymous key": {func(w http.ResponseWriter) {
			_, _ = fmt.Fprintf(w, `{"key":{"id":"key_1"},"secret":%q}`, generate(t, reg, "ingest"))
		}, `it holds a "ingest" key`},
	} {
		t.Run(name, func(t *testing.T) {
			mint.answerWith(tc.answer)
			dir := t.TempDir()
			_, err := Start(context.Background(), Options{Dir: dir, APIURL: mint.URL, Endpoint: gw.URL})
			require.ErrorContains(t, err, tc.want)
			require.Empty(t, entries(t, dir), "nothing is left in the project directory")
		})
	}
	mint.answerWith(nil)
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), APIURL: "http://127.0.0.1:1", Endpoint: gw.URL})
	require.ErrorContains(t, err, "minting an anonymous key at http://127.0.0.1:1/v1/anonymous-keys")
}

// Goroutines starting at once on an empty directory mint one key and all use it.
func TestConcurrentStartsMintOneKey(t *testing.T) {
	clearEnv(t)
	reg := keyformat.Default()
	mint, gw := newMintServer(t, reg), newGateway(t)
	dir := t.TempDir()
	const n = 16
	var (
		wg       sync.WaitGroup
		prefixes [n]string
		sources  [n]KeySource
		errs     [n]error
	)
	for i := range n {
		wg.Go(func() {
			s, err := Start(context.Background(), Options{Dir: dir, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
			if errs[i] = err; err == nil {
				prefixes[i], sources[i] = s.Key().DisplayPrefix, s.Key().Source
				errs[i] = s.Shutdown(context.Background())
			}
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
	}
	require.EqualValues(t, 1, mint.mints.Load())
	want := displayPrefix(t, reg, strings.TrimSpace(readFile(t, filepath.Join(dir, ".latchkey", "anon_key"))))
	minted := 0
	for i := range n {
		require.Equal(t, want, prefixes[i])
		if sources[i] == SourceMinted {
			minted++
		}
	}
	require.Equal(t, 1, minted)
}

// childEnv, when set, makes the test binary one start in a process of its own (TestMain;
// the parent test passes the directory, the mint server and the gateway in the environment).
const childEnv = "LATCHKEY_SENDER_TEST_CHILD_DIR"

// TestMain runs the tests, or, in a child of TestConcurrentProcessesMintOneKey, one start.
func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(childStart(dir))
	}
	os.Exit(m.Run())
}

// childStart starts a sender on dir and prints its key's source and display prefix.
func childStart(dir string) int {
	s, err := Start(context.Background(), Options{Dir: dir, Logger: discard()})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Printf("RESULT %s %s\n", s.Key().Source, s.Key().DisplayPrefix)
	if err := s.Shutdown(context.Background()); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	return 0
}

// Processes starting at once on an empty directory mint one key and all use it: the test
// binary is run again, several times at once, each run one start.
func TestConcurrentProcessesMintOneKey(t *testing.T) {
	clearEnv(t)
	reg := keyformat.Default()
	mint, gw := newMintServer(t, reg), newGateway(t)
	dir := t.TempDir()
	const n = 8
	cmds := make([]*exec.Cmd, n)
	outs := make([]strings.Builder, n)
	for i := range n {
		cmd := exec.Command(os.Args[0]) //nolint:gosec // the test binary itself, as a child (TestMain)
		cmd.Env = append(os.Environ(), childEnv+"="+dir, EnvAPIURL+"="+mint.URL, EnvEndpoint+"="+gw.URL)
		cmd.Stdout, cmd.Stderr = &outs[i], &outs[i]
		cmds[i] = cmd
	}
	for _, cmd := range cmds {
		require.NoError(t, cmd.Start())
	}
	for i, cmd := range cmds {
		require.NoError(t, cmd.Wait(), outs[i].String())
	}
	require.EqualValues(t, 1, mint.mints.Load())
	want := displayPrefix(t, reg, strings.TrimSpace(readFile(t, filepath.Join(dir, ".latchkey", "anon_key"))))
	minted := 0
	for i := range n {
		var source, prefix string
		for line := range strings.SplitSeq(outs[i].String(), "\n") {
			if r, ok := strings.CutPrefix(line, "RESULT "); ok {
				source, prefix, _ = strings.Cut(r, " ")
			}
		}
		require.Equal(t, want, prefix, outs[i].String())
		if KeySource(source) == SourceMinted {
			minted++
		}
	}
	require.Equal(t, 1, minted)
}

// A start waiting for another's lock gives up when its context is done, and the lock is
// free again afterwards.
func TestLockWaitCanceled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "anon_key.lock")
	unlock, err := lockFile(context.Background(), path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = lockFile(ctx, path)
	require.ErrorIs(t, err, context.Canceled)
	unlock()
	unlock2, err := lockFile(context.Background(), path)
	require.NoError(t, err)
	unlock2()
}
