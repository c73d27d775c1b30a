package keyformat

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactFindsEveryKeyOfEveryProfile(t *testing.T) {
	for _, name := range ProfileNames() {
		r, err := LoadProfile(name)
		require.NoError(t, err)
		for _, typ := range r.Types() {
			key, err := r.Generate(typ.Name)
			require.NoError(t, err)
			for _, text := range []string{
				key,
				"key " + key + " not found",
				`id "` + key + `" is not a key id (key_…)`,
				"/v1/keys/" + key + ":rotate",
				"x" + key + "y",
			} {
				got := Redact(text)
				require.NotContains(t, got, key[len(typ.Prefix):], "profile %s, type %s, in %q", name, typ.Name, text)
				require.Contains(t, got, typ.Prefix+Redacted)
			}
		}
	}
}

func TestRedactLegacyPrefixAndUnknownProfile(t *testing.T) {
	r, err := NewRegistry([]Type{{
		Name: "ingest", Prefix: "zz_new_", Encoding: EncodingBase62, RandomBytes: 24, Checksum: true,
		Capabilities: []string{"ingest"}, Scope: ScopeProject, LegacyPrefixes: []string{"zzold_"}, Mintable: true,
	}})
	require.NoError(t, err)
	// A profile this process never loaded: its checksummed keys are still found.
	key, err := r.Generate("ingest")
	require.NoError(t, err)
	require.Equal(t, "a zz_new_"+Redacted+" b", Redact("a "+key+" b"))
	// A legacy-prefix key carries the checksum of its own prefix: recompute it.
	body := key[len("zz_new_") : len(key)-ChecksumLen]
	sum := make([]byte, ChecksumLen)
	putChecksum(sum, crcString("zzold_"+body))
	legacy := "zzold_" + body + string(sum)
	_, err = r.Parse(legacy)
	require.NoError(t, err)
	require.Equal(t, "zzold_"+Redacted, Redact(legacy))
}

func TestRedactKeepsWhatIsNotAKey(t *testing.T) {
	key, err := Default().Generate("ingest")
	require.NoError(t, err)
	broken := key[:len(key)-1] + string(rune('0'+(key[len(key)-1]-'0'+1)%10))
	if broken == key {
		broken = key[:len(key)-1] + "x"
	}
	for _, s := range []string{
		"", "key_01jq0000000000000000000000", "prj_01jabc", "lk_ing_short", "plain text, no ids",
		"snake_case_words_in_a_sentence", strings.Repeat("a_", 500), broken,
	} {
		require.Equal(t, s, Redact(s))
	}
}

func FuzzRedact(f *testing.F) {
	key, _ := Default().Generate("account")
	f.Add("see " + key + " here")
	f.Add("a_b_c")
	f.Fuzz(func(t *testing.T, s string) {
		out := Redact(s)
		if strings.Contains(s, key) && strings.Contains(out, key) {
			t.Fatalf("key kept in %q", out)
		}
		if Redact(out) != out {
			t.Fatalf("not idempotent: %q -> %q", out, Redact(out))
		}
	})
}

// A session token is a bearer credential like a key: pasted where an id belongs, or sent as
// X-Request-Id, it must be neither kept in the audit log nor echoed (issue 8, fault 11).
func TestRedactSessionTokens(t *testing.T) {
	const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	body := make([]byte, SessionTokenBodyLen)
	for i := range body {
		body[i] = base62[(i*7+3)%len(base62)]
	}
	tok := SessionTokenPrefix + string(body)
	for _, text := range []string{
		tok,
		"id " + tok + " is not a key id",
		"/v1/keys/" + tok + ":revoke",
		"x" + tok + "y",
		tok + tok,
	} {
		got := Redact(text)
		require.NotContains(t, got, string(body[:16]), "in %q", text)
		require.Contains(t, got, SessionTokenPrefix+Redacted)
		require.Equal(t, got, Redact(got), "idempotent")
	}
	// Shorter than a token: kept.
	short := SessionTokenPrefix + string(body[:SessionTokenBodyLen-1])
	require.Equal(t, short, Redact(short))
}

// TestRedactLegacyBodies: a legacy key (gmk's col_) is hidden whatever its body holds
// ('_' and '-' too), when its prefix starts a word; a word that merely contains the
// prefix is kept.
func TestRedactLegacyBodies(t *testing.T) {
	for in, want := range map[string]string{
		"agent col_abc-def_ghi0123456789 leaked":   "agent col_" + Redacted + " leaked",
		"col_" + strings.Repeat("-", 20):           "col_" + Redacted,
		`{"secret":"col_AAAAbbbbCCCCdddd"}`:        `{"secret":"col_` + Redacted + `"}`,
		"protocol_version_is_long_enough_to_match": "protocol_version_is_long_enough_to_match",
		"col_short":                       "col_short",
		"xcol_" + strings.Repeat("a", 20): "xcol_" + strings.Repeat("a", 20),
	} {
		require.Equal(t, want, Redact(in), in)
	}
}
