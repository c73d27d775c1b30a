package sender

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := []string{}
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// With no configuration at all, against a server of any built-in profile with anonymous
// keys, the first start mints, learns the profile from the key and keeps it in that
// profile's file; the next start finds the file and mints nothing.
func TestZeroConfigAnonymousEveryProfile(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct{ profile, file, env, prefix string }{
		{"default", ".latchkey", "LATCHKEY_API_KEY", "lk_anon_"},
		{"typed", ".glasstrace", "GLASSTRACE_API_KEY", "gt_anon_"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			mint, gw := newMintServer(t, mustProfile(t, tc.profile)), newGateway(t)
			project := t.TempDir()
			opts := Options{Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()}
			s := start(t, opts)
			require.Equal(t, SourceMinted, s.Key().Source)
			require.True(t, s.Key().Anonymous)
			require.True(t, strings.HasPrefix(s.Key().DisplayPrefix, tc.prefix), s.Key().DisplayPrefix)
			require.Equal(t, tc.env, s.Key().EnvVar)
			require.Equal(t, filepath.Join(project, tc.file, "anon_key"), s.Key().File)
			require.Equal(t, []string{tc.file}, entries(t, project), "only the profile's directory")

			s = start(t, opts)
			require.Equal(t, SourceFile, s.Key().Source)
			require.EqualValues(t, 1, mint.calls.Load(), "one mint")
		})
	}
}

// LATCHKEY_KEY_PROFILE, the services' own variable, names the profile when the option
// does not; the option beats it.
func TestProfileFromEnvironment(t *testing.T) {
	clearEnv(t)
	typed := mustProfile(t, "typed")
	mint, gw := newMintServer(t, typed), newGateway(t)
	t.Setenv("LATCHKEY_KEY_PROFILE", "typed")
	t.Setenv("GLASSTRACE_API_KEY", generate(t, typed, "ingest"))
	s := start(t, Options{Dir: t.TempDir(), APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
	require.Equal(t, SourceEnv, s.Key().Source)
	require.Equal(t, "GLASSTRACE_API_KEY", s.Key().EnvVar)

	// The option beats the variable; a key left in another scheme's variable is not ignored
	// for a fresh anonymous key, which would send the data where no one looks.
	before := mint.mints.Load()
	_, err := Start(context.Background(), Options{Profile: "default", Dir: t.TempDir(), APIURL: mint.URL, Endpoint: gw.URL})
	require.ErrorContains(t, err, `GLASSTRACE_API_KEY is set, but profile "default" reads its key from LATCHKEY_API_KEY`)
	require.Equal(t, before, mint.mints.Load(), "nothing minted")
	t.Setenv("GLASSTRACE_API_KEY", "")
	t.Setenv("LATCHKEY_API_KEY", generate(t, mustProfile(t, "default"), "ingest"))
	_, err = Start(context.Background(), Options{Dir: t.TempDir(), APIURL: mint.URL, Endpoint: gw.URL})
	require.ErrorContains(t, err, `LATCHKEY_API_KEY is set, but profile "typed" reads its key from GLASSTRACE_API_KEY`)
	t.Setenv("LATCHKEY_API_KEY", "")

	t.Setenv("LATCHKEY_KEY_PROFILE", "nonesuch")
	_, err = Start(context.Background(), Options{Dir: t.TempDir(), APIURL: mint.URL, Endpoint: gw.URL})
	require.ErrorContains(t, err, "LATCHKEY_KEY_PROFILE")
	require.ErrorContains(t, err, "nonesuch")
}

// With no profile named, the key decides it: an explicit key is parsed by every built-in
// profile, and the variable set is the profile's.
func TestProfileFromKey(t *testing.T) {
	clearEnv(t)
	typed := mustProfile(t, "typed")
	mint, gw := newMintServer(t, typed), newGateway(t)
	dev := generate(t, typed, "ingest")
	opts := func() Options {
		return Options{Dir: t.TempDir(), APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()}
	}

	o := opts()
	o.APIKey = dev
	s := start(t, o)
	require.Equal(t, SourceOption, s.Key().Source)
	require.Equal(t, "GLASSTRACE_API_KEY", s.Key().EnvVar)
	require.Equal(t, "ingest", s.Key().Type)

	for _, tc := range []struct{ profile, env, key string }{
		{"typed", "GLASSTRACE_API_KEY", dev},
		{"envkeys", "TRACELOOP_API_KEY", generate(t, mustProfile(t, "envkeys"), "ingest")},
		{"deeptracer", "DEEPTRACER_KEY", generate(t, mustProfile(t, "deeptracer"), "ingest")},
		{"lumiqtrace", "LUMIQTRACE_API_KEY", generate(t, mustProfile(t, "lumiqtrace"), "ingest")},
		{"gmk", "GLASSMKR_API_KEY", generate(t, mustProfile(t, "gmk"), "ingest")},
		{"default", "LATCHKEY_API_KEY", generate(t, keyformat.Default(), "ingest")},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Setenv(tc.env, tc.key)
			s := start(t, opts())
			require.Equal(t, SourceEnv, s.Key().Source)
			require.Equal(t, tc.env, s.Key().EnvVar)
		})
	}

	// Two variables set: the profile must be named.
	t.Setenv("GLASSTRACE_API_KEY", dev)
	t.Setenv("LATCHKEY_API_KEY", generate(t, keyformat.Default(), "ingest"))
	_, err := Start(context.Background(), opts())
	require.ErrorContains(t, err, "GLASSTRACE_API_KEY")
	require.ErrorContains(t, err, "LATCHKEY_API_KEY")
	require.ErrorContains(t, err, "Options.Profile")
	o = opts()
	o.Profile = "typed"
	require.Equal(t, "GLASSTRACE_API_KEY", start(t, o).Key().EnvVar)
	t.Setenv("LATCHKEY_KEY_PROFILE", "default")
	require.Equal(t, "LATCHKEY_API_KEY", start(t, opts()).Key().EnvVar)
	t.Setenv("LATCHKEY_KEY_PROFILE", "")
	t.Setenv("LATCHKEY_API_KEY", "")

	// A key no built-in profile takes is refused, naming the closest rule, never the key.
	forged := dev[:len(dev)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(dev, "a")]
	o = opts()
	o.APIKey = forged
	_, err = Start(context.Background(), o)
	require.ErrorContains(t, err, `the key in Options.APIKey is not a key of profile "typed"`)
	require.ErrorIs(t, err, keyformat.ErrChecksum)
	o.APIKey = "zz_" + strings.Repeat("x", 30)
	_, err = Start(context.Background(), o)
	require.ErrorContains(t, err, "the key in Options.APIKey is a key of no built-in profile")
	require.ErrorIs(t, err, keyformat.ErrUnknownPrefix)
	require.NotContains(t, err.Error(), strings.Repeat("x", 30))
	require.Zero(t, mint.calls.Load(), "a start with a key mints nothing")
}

// A key file of a built-in profile in the project directory decides the profile; two of
// them are an error; neither mints.
func TestProfileFromKeyFile(t *testing.T) {
	clearEnv(t)
	typed := mustProfile(t, "typed")
	mint, gw := newMintServer(t, keyformat.Default()), newGateway(t)
	project := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(project, ".glasstrace"), 0o700))
	anon := generate(t, typed, "anonymous")
	require.NoError(t, os.WriteFile(filepath.Join(project, ".glasstrace", "anon_key"), []byte(anon+"\n"), 0o600))
	s := start(t, Options{Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
	require.Equal(t, SourceFile, s.Key().Source)
	require.Equal(t, displayPrefix(t, typed, anon), s.Key().DisplayPrefix)
	require.Equal(t, "GLASSTRACE_API_KEY", s.Key().EnvVar)

	require.NoError(t, os.Mkdir(filepath.Join(project, ".latchkey"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(project, ".latchkey", "anon_key"), []byte(generate(t, keyformat.Default(), "anonymous")), 0o600))
	_, err := Start(context.Background(), Options{Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
	require.ErrorContains(t, err, filepath.Join(".glasstrace", "anon_key"))
	require.ErrorContains(t, err, filepath.Join(".latchkey", "anon_key"))
	require.ErrorContains(t, err, "Options.Profile")
	require.Zero(t, mint.calls.Load())
}

// A minted key that no built-in profile takes (the server runs a profile file of its own)
// is an error before anything is written, after one mint.
func TestMintedKeyOfNoBuiltinProfile(t *testing.T) {
	clearEnv(t)
	own, err := keyformat.Default().Profile(func(t *keyformat.Type) { t.Prefix = "own" + t.Prefix })
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "own.json")
	require.NoError(t, os.WriteFile(path, own, 0o600))
	reg, err := keyformat.LoadProfile(path)
	require.NoError(t, err)
	mint, gw := newMintServer(t, reg), newGateway(t)
	project := t.TempDir()
	_, err = Start(context.Background(), Options{Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
	require.ErrorContains(t, err, "no built-in profile")
	require.ErrorContains(t, err, `"ownlk_anon_"`)
	require.ErrorContains(t, err, "Options.Profile")
	require.EqualValues(t, 1, mint.calls.Load(), "one mint, not two")
	require.Empty(t, entries(t, project), "nothing written")

	// Named, the profile file works.
	s := start(t, Options{Profile: path, Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
	require.Equal(t, SourceMinted, s.Key().Source)
	require.Equal(t, filepath.Join(project, ".latchkey", "anon_key"), s.Key().File)
}

// Under a named profile, a server of another built-in profile is named in the error.
func TestMintedKeyOfAnotherProfile(t *testing.T) {
	clearEnv(t)
	mint, gw := newMintServer(t, mustProfile(t, "typed")), newGateway(t)
	project := t.TempDir()
	_, err := Start(context.Background(), Options{Profile: "default", Dir: project, APIURL: mint.URL, Endpoint: gw.URL})
	require.ErrorContains(t, err, `the server runs profile "typed"`)
	require.Empty(t, entries(t, project))
}

// More than one built-in profile taking a key is an error naming them.
func TestAmbiguousKey(t *testing.T) {
	reg := keyformat.Default()
	key := generate(t, reg, "ingest")
	_, err := profileOfKey(key, "Options.APIKey", []profile{{name: "a", reg: reg}, {name: "b", reg: reg}})
	require.ErrorContains(t, err, `profiles "a" and "b"`)
	require.NotContains(t, err.Error(), key[8:])
}

// Browser session keys are refused at start, wherever they come from: every export with
// one would be 403 origin_not_allowed.
func TestSessionKeysRefused(t *testing.T) {
	clearEnv(t)
	gw := newGateway(t)
	for _, tc := range []struct{ profile, env string }{{"default", "LATCHKEY_API_KEY"}, {"typed", "GLASSTRACE_API_KEY"}} {
		reg := mustProfile(t, tc.profile)
		sess, ok := reg.Session()
		require.True(t, ok)
		key := generate(t, reg, sess.Name)
		for _, fromEnv := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s env=%v", tc.profile, fromEnv), func(t *testing.T) {
				o := Options{Dir: t.TempDir(), Endpoint: gw.URL}
				if fromEnv {
					t.Setenv(tc.env, key)
				} else {
					o.APIKey = key
				}
				_, err := Start(context.Background(), o)
				require.ErrorContains(t, err, "browser session key")
				require.ErrorContains(t, err, "ingest key")
				require.NotContains(t, err.Error(), key[len(key)-20:])
			})
		}
	}
	require.Empty(t, gw.received("Authorization"), "nothing was sent")
}
