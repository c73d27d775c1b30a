package keyformat

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// found is what a test expects of one Find result.
type found struct {
	typ           string
	start, end    int
	legacy, valid bool
}

func summary(fs []Found) []found {
	out := make([]found, len(fs))
	for i, f := range fs {
		out[i] = found{f.Type.Name, f.Start, f.End, f.Legacy, f.Verified}
	}
	return out
}

// TestFindEveryTypeOfEveryProfile: every key of every built-in profile is found wherever
// text puts a whole token, at its exact position, verified exactly when its type has a
// checksum and its prefix is current.
func TestFindEveryTypeOfEveryProfile(t *testing.T) {
	for name, r := range profiles(t) {
		for _, typ := range r.Types() {
			keys := map[string]bool{mustGenerate(t, r, typ.Name): false}
			for _, p := range typ.LegacyPrefixes {
				keys[withPrefix(t, r, mustGenerate(t, r, typ.Name), p)] = true
			}
			for key, legacy := range keys {
				for _, text := range []string{
					key,
					"API_KEY=" + key + "\n",
					`{"token": "` + key + `"}`,
					"Authorization: Bearer " + key,
					"(" + key + ")",
					"a\n" + key + "\tb",
					"https://example.com/?key=" + key + "&x=1",
				} {
					at := strings.Index(text, key)
					want := []found{{typ.Name, at, at + len(key), legacy, typ.Checksum && !legacy}}
					require.Equal(t, want, summary(r.Find([]byte(text))), "profile %s, type %s, in %q", name, typ.Name, text)
					require.Equal(t, want, summary(r.FindString(text)))
				}
			}
		}
	}
}

// TestFindTwoKeysInOrder: several keys in one text come back in the order they appear.
func TestFindTwoKeysInOrder(t *testing.T) {
	r := Default()
	a, b := mustGenerate(t, r, "account"), mustGenerate(t, r, "ingest")
	text := "first " + a + ", then " + b + " and " + a
	got := summary(r.FindString(text))
	require.Len(t, got, 3)
	require.Equal(t, []string{"account", "ingest", "account"}, []string{got[0].typ, got[1].typ, got[2].typ})
	for i, f := range got {
		require.True(t, f.valid)
		if i > 0 {
			require.Less(t, got[i-1].end, f.start)
		}
	}
	require.Equal(t, a, text[got[2].start:got[2].end])
}

// TestFindNearMisses: what is not exactly a whole key of the profile is not found, and
// what has no checksum to hold it is found but flagged as unverified.
func TestFindNearMisses(t *testing.T) {
	def := Default()
	dt, err := LoadProfile("deeptracer")
	require.NoError(t, err)
	gmk, err := LoadProfile("gmk")
	require.NoError(t, err)

	key := mustGenerate(t, def, "ingest")
	body := len("lk_ing_")
	last := len(key) - 1
	other := func(c byte) byte { // another base62 character
		if c == 'a' {
			return 'b'
		}
		return 'a'
	}
	for name, text := range map[string]string{
		"one body character changed":     replaceAt(key, body+3, other(key[body+3])),
		"checksum broken":                replaceAt(key, last, other(key[last])),
		"two characters transposed":      transpose(key, body),
		"truncated":                      key[:last],
		"truncated to the prefix":        "lk_ing_",
		"one character more":             key + "x",
		"prefix inside a word":           "x" + key,
		"inside a longer snake word":     "my_" + key,
		"followed by a snake word":       key + "_old",
		"followed by letters":            key + "abc",
		"upper-cased prefix":             "LK_ING_" + key[body:],
		"unknown prefix":                 "lk_xyz_" + key[body:],
		"wrong separator":                "lk-ing_" + key[body:],
		"a character outside base62":     replaceAt(key, body+5, '+'),
		"the body only":                  key[body:],
		"prefix and body without a gap":  "lk_ing" + key[body:],
		"a random string of the shape":   "lk_ing_" + strings.Repeat("A", len(key)-body),
		"the key split by a line break":  key[:20] + "\n" + key[20:],
		"snake case words and no key":    "snake_case_words_in_a_sentence lk_ing_ lk_ing_short",
		"an id that looks like a prefix": "key_01jq0000000000000000000000",
	} {
		require.Empty(t, def.FindString(text), "%s: %q", name, text)
	}

	// Not a key character either side: found, whatever the delimiter.
	for _, sep := range []string{"-", ".", "/", ":", "=", "'", "`", "[", "*", "\x00", "\xff", "é"} {
		require.Len(t, def.FindString(sep+key+sep), 1, "between %q", sep)
	}

	// No checksum: the exact shape is all there is, so a changed hex digit still matches,
	// flagged unverified; anything off the shape does not.
	dtKey := mustGenerate(t, dt, "ingest")
	require.Equal(t, []found{{"ingest", 0, len(dtKey), false, false}}, summary(dt.FindString(dtKey)))
	digit := byte('0')
	if dtKey[5] == '0' {
		digit = '1'
	}
	flipped := replaceAt(dtKey, 5, digit)
	require.Equal(t, []found{{"ingest", 0, len(dtKey), false, false}}, summary(dt.FindString(flipped)), "another hex digit")
	for name, text := range map[string]string{
		"not hex":           replaceAt(dtKey, 5, 'g'),
		"upper-cased":       strings.ToUpper(dtKey),
		"a digit short":     dtKey[:len(dtKey)-1],
		"a digit long":      dtKey + "0",
		"inside a word":     "x" + dtKey,
		"inside snake case": "old_" + dtKey,
	} {
		require.Empty(t, dt.FindString(text), "deeptracer, %s: %q", name, text)
	}

	// A legacy prefix: found and never verified; inside a word or cut short, nothing.
	legacy := withPrefix(t, gmk, mustGenerate(t, gmk, "ingest"), "col_")
	require.Equal(t, []found{{"ingest", 1, 1 + len(legacy), true, false}}, summary(gmk.FindString(" "+legacy+" ")))
	for name, text := range map[string]string{
		"inside a word":             "x" + legacy,
		"after a dash":              "x-" + legacy,
		"far too short":             "col_" + legacy[4:12],
		"the prefix only":           "col_",
		"prefix inside snake words": "my_col_" + legacy[4:],
	} {
		require.Empty(t, gmk.FindString(text), "gmk legacy, %s: %q", name, text)
	}
}

// TestFindRandomTextFindsNothing: text that is not keys yields nothing, even when it is
// made of key characters and of the profile's own prefixes followed by bodies of exactly
// the right shape (the checksum refuses them).
func TestFindRandomTextFindsNothing(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ -\n"
	text := make([]byte, 1<<20)
	for i := range text {
		text[i] = alphabet[rng.IntN(len(alphabet))]
	}
	for name, r := range profiles(t) {
		for _, f := range r.Find(text) {
			// Only a type without a checksum can match random text, and only weakly.
			require.False(t, f.Verified, "profile %s: verified %q", name, text[f.Start:f.End])
		}
	}

	// Right prefix, right length, base62 body, random checksum: 20,000 near-keys.
	r := Default()
	var b bytes.Buffer
	for i := range 20000 {
		typ := r.types[i%len(r.types)]
		b.WriteString(typ.Prefix)
		for range typ.BodyLen() + ChecksumLen {
			b.WriteByte(base62Alphabet[rng.IntN(62)])
		}
		b.WriteString(" ")
	}
	require.Empty(t, r.Find(b.Bytes()))
}

// TestFindIsLinear: inputs made to make a scanner backtrack (a prefix over and over, one
// long run of key characters, prefixes glued by dashes) cost about what plain text does.
func TestFindIsLinear(t *testing.T) {
	r, err := LoadProfile("gmk")
	require.NoError(t, err)
	const n = 1 << 20
	for name, text := range map[string]string{
		"prefix repeated":       strings.Repeat("gmk_cru_live_", n/13),
		"legacy prefix":         strings.Repeat("col_", n/4),
		"dash glued prefixes":   strings.Repeat("gmk_cru_live_-col_-", n/19),
		"one run, no separator": strings.Repeat("a", n-1) + "_",
	} {
		require.Empty(t, r.FindString(text), name)
	}
}

func BenchmarkFind(b *testing.B) {
	r := Default()
	key := mustGenerate(b, r, "ingest")
	text := []byte(strings.Repeat("some ordinary log line with snake_case_words and ids like key_01jq0 ", 1000) + key)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if len(r.Find(text)) != 1 {
			b.Fatal("key not found")
		}
	}
}

// FuzzFind: Find never panics, and each result is within the text, in order, a whole token
// Parse accepts as exactly what the result says, and hidden by Redact.
func FuzzFind(f *testing.F) {
	regs := profiles(f)
	for _, r := range regs {
		for _, typ := range r.Types() {
			s := mustGenerate(f, r, typ.Name)
			f.Add([]byte("k=" + s + "\n"))
			f.Add([]byte(s[:len(s)-1]))
			f.Add([]byte("x" + s))
			f.Add([]byte(s + "-" + s))
			for _, p := range typ.LegacyPrefixes {
				f.Add([]byte(withPrefix(f, r, s, p)))
				f.Add([]byte(p + strings.Repeat("a-", 20)))
			}
		}
	}
	for _, junk := range []string{"", "_", "-_-", "lk_ing_", "col_", "\xff_\x00", strings.Repeat("lk_", 100)} {
		f.Add([]byte(junk))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		for name, r := range regs {
			prev := -1
			for _, got := range r.Find(text) {
				if got.Start < 0 || got.Start >= got.End || got.End > len(text) {
					t.Fatalf("%s: position %d:%d outside %d bytes", name, got.Start, got.End, len(text))
				}
				if got.Start < prev {
					t.Fatalf("%s: results out of order", name)
				}
				prev = got.Start
				key := string(text[got.Start:got.End])
				k, err := r.Parse(key)
				if err != nil {
					t.Fatalf("%s: found %q, which Parse refuses: %v", name, key, err)
				}
				if k.Type != got.Type || k.Legacy != got.Legacy || got.Verified != (k.Type.Checksum && !k.Legacy) {
					t.Fatalf("%s: result %+v disagrees with Parse %+v", name, got, k)
				}
				inToken := isKeyChar
				if got.Legacy {
					inToken = isRunChar
				}
				if got.Start > 0 && inToken(text[got.Start-1]) || got.End < len(text) && inToken(text[got.End]) {
					t.Fatalf("%s: %q is not a whole token of %q", name, key, text)
				}
				// Redact hides every whole-token copy of the key. A copy glued inside a longer
				// word is no key to Find, and of a legacy prefix (no checksum) Redact leaves it
				// too, so that words merely holding "col_" are not mangled.
				redacted := Redact(string(text))
				for from := 0; ; {
					i := strings.Index(redacted[from:], key)
					if i < 0 {
						break
					}
					i += from
					from = i + 1
					end := i + len(key)
					if (i == 0 || !inToken(redacted[i-1])) && (end == len(redacted) || !inToken(redacted[end])) {
						t.Fatalf("%s: Redact keeps %q in %q", name, key, redacted)
					}
				}
			}
		}
	})
}
