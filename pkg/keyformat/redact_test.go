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
