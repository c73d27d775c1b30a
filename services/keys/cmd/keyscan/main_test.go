package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

func keyscan(t *testing.T, stdin string, args ...string) (status int, out, errs string) {
	t.Helper()
	var o, e bytes.Buffer
	status = run(args, strings.NewReader(stdin), &o, &e)
	return status, o.String(), e.String()
}

func generate(t *testing.T, profile, typ string) string {
	t.Helper()
	r, err := keyformat.LoadProfile(profile)
	require.NoError(t, err)
	k, err := r.Generate(typ)
	require.NoError(t, err)
	return k
}

func TestKeyscan(t *testing.T) {
	dir := t.TempDir()
	key := generate(t, "default", "ingest")
	other := generate(t, "default", "account")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "clean.txt"), []byte("nothing here but lk_ing_ and snake_case\n"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub", ".git"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", ".env"), []byte("A=1\nAPI_KEY="+key+"\n  token: "+other+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", ".git", "config"), []byte(key), 0o600))

	status, out, errs := keyscan(t, "", filepath.Join(dir, "clean.txt"))
	require.Equal(t, 0, status, errs)
	require.Empty(t, out)

	status, out, errs = keyscan(t, "", dir)
	require.Equal(t, 1, status, errs)
	env := filepath.Join(dir, "sub", ".env")
	require.Equal(t, env+":2:9: ingest "+key[:len("lk_ing_")+8]+"… verified\n"+
		env+":3:10: account "+other[:len("lk_acct_")+8]+"… verified\n", out, ".git skipped, positions 1-based")
	require.NotContains(t, out, key)
	require.NotContains(t, out, other)

	// Standard input, another profile: no checksum, so only unverified.
	dt := generate(t, "deeptracer", "ingest")
	status, out, _ = keyscan(t, "key="+dt, "-profile", "deeptracer")
	require.Equal(t, 1, status)
	require.Equal(t, "-:1:5: ingest "+dt[:3+8]+"… unverified (type without checksum)\n", out)

	// Errors: a missing file, an unknown profile, a bad flag.
	status, _, errs = keyscan(t, "", filepath.Join(dir, "missing"))
	require.Equal(t, 2, status)
	require.Contains(t, errs, "missing")
	status, _, errs = keyscan(t, "", "-profile", "no-such-profile", dir)
	require.Equal(t, 2, status)
	require.Contains(t, errs, "no-such-profile")
	status, _, _ = keyscan(t, "", "-bogus")
	require.Equal(t, 2, status)
}
