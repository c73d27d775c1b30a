package keyformat

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func replaceAt(s string, i int, b byte) string {
	buf := []byte(s)
	buf[i] = b
	return string(buf)
}

// transpose swaps the first two differing adjacent characters from i on: the
// commonest typo.
func transpose(s string, i int) string {
	for ; s[i] == s[i+1]; i++ {
	}
	b := []byte(s)
	b[i], b[i+1] = b[i+1], b[i]
	return string(b)
}

func TestParseErrors(t *testing.T) {
	def := Default()
	gmk, err := LoadProfile("gmk")
	if err != nil {
		t.Fatal(err)
	}
	dt, err := LoadProfile("deeptracer")
	if err != nil {
		t.Fatal(err)
	}
	ing := mustGenerate(t, def, "ingest")
	col := mustGenerate(t, gmk, "ingest")
	dtKey := mustGenerate(t, dt, "ingest")
	last := len(ing) - 1
	otherDigit := byte('0')
	if ing[last] == '0' {
		otherDigit = '1'
	}

	tests := []struct {
		name string
		r    *Registry
		in   string
		want error
	}{
		{"empty", def, "", ErrMalformed},
		{"huge", def, strings.Repeat("a", 1<<20), ErrMalformed},
		{"one byte over the limit", def, "lk_ing_" + strings.Repeat("a", MaxKeyLen-6), ErrMalformed},
		{"no prefix", def, "abcdef", ErrUnknownPrefix},
		{"unknown prefix", def, "xx_" + ing[len("lk_ing_"):], ErrUnknownPrefix},
		{"prefix in other case", def, "LK_ING_" + ing[len("lk_ing_"):], ErrUnknownPrefix},
		{"legacy prefix of another profile", def, withPrefix(t, gmk, col, "col_"), ErrUnknownPrefix},
		{"prefix only", def, "lk_ing_", ErrMalformed},
		{"one char short", def, ing[:last], ErrMalformed},
		{"one char long", def, ing + "A", ErrMalformed},
		{"bad body char", def, replaceAt(ing, 10, '-'), ErrMalformed},
		{"non-ASCII body byte", def, replaceAt(ing, 10, 0xff), ErrMalformed},
		{"NUL in body", def, replaceAt(ing, 10, 0), ErrMalformed},
		{"bad checksum char", def, replaceAt(ing, last, '+'), ErrMalformed},
		{"underscore in body", def, replaceAt(ing, 10, '_'), ErrUnknownPrefix},
		{"bad checksum", def, replaceAt(ing, last, otherDigit), ErrChecksum},
		{"transposed body chars", def, transpose(ing, len("lk_ing_")), ErrChecksum},
		{"uppercase hex", dt, "dt_" + strings.ToUpper(dtKey[3:]), ErrMalformed},
		{"hex key too short", dt, dtKey[:len(dtKey)-1], ErrMalformed},
		{"legacy body too short", gmk, "col_" + strings.Repeat("a", LegacyBodyMin-1), ErrMalformed},
		{"legacy body too long", gmk, "col_" + strings.Repeat("a", LegacyBodyMax+1), ErrMalformed},
		{"legacy prefix only", gmk, "col_", ErrMalformed},
		{"legacy body with a dot", gmk, "col_" + strings.Repeat("a", 20) + ".", ErrMalformed},
		{"legacy body with a space", gmk, "col_abcdefgh ijklmnopq", ErrMalformed},
		{"legacy body with a plus", gmk, "col_abcdefgh+ijklmnopq", ErrMalformed},
		{"legacy body non-ASCII", gmk, "col_abcdefgh\xffijklmnopq", ErrMalformed},
		{"legacy prefix in other case", gmk, "COL_" + strings.Repeat("a", 20), ErrUnknownPrefix},
		{"legacy prefix not at the start", gmk, "xcol_" + strings.Repeat("a", 20), ErrUnknownPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := tt.r.Parse(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse = %+v, %v; want %v", k, err, tt.want)
			}
			if k != (Key{}) {
				t.Errorf("failed Parse returned a non-zero key %+v", k)
			}
			if len(tt.in) >= 8 && strings.Contains(err.Error(), tt.in[len(tt.in)-8:]) {
				t.Errorf("error %q contains key text", err)
			}
		})
	}
}

// TestParseLegacy: a legacy prefix takes any body of LegacyBodyMin to LegacyBodyMax
// characters of [A-Za-z0-9_-], with no checksum (keys another system minted).
func TestParseLegacy(t *testing.T) {
	gmk, err := LoadProfile("gmk")
	if err != nil {
		t.Fatal(err)
	}
	cur := mustGenerate(t, gmk, "ingest")
	for name, body := range map[string]string{
		"shortest":                     strings.Repeat("a", LegacyBodyMin),
		"longest":                      strings.Repeat("Z", LegacyBodyMax),
		"every character class":        "aZ09_-aZ09_-aZ09_-",
		"underscores like a prefix":    "lk_ing_0123456789abcdef",
		"a current key's body and sum": cur[len("gmk_cru_live_"):],
		"dashes only":                  strings.Repeat("-", 40),
		"ends with an underscore":      strings.Repeat("q", 20) + "_",
		"another legacy-looking start": "col_" + strings.Repeat("b", 20),
	} {
		in := "col_" + body
		k, err := gmk.Parse(in)
		if err != nil {
			t.Fatalf("%s: legacy key rejected: %v", name, err)
		}
		if !k.Legacy || k.Prefix != "col_" || k.Body != body || k.Type.Name != "ingest" || k.Type.Prefix != "gmk_cru_live_" {
			t.Fatalf("%s: legacy key parsed as %+v", name, k)
		}
		if got := DisplayPrefix(k); got != "col_"+body[:DisplayBodyLen] {
			t.Fatalf("%s: display prefix %q", name, got)
		}
	}
	k, err := gmk.Parse(cur)
	if err != nil || k.Legacy || k.Prefix != "gmk_cru_live_" {
		t.Fatalf("current key parsed as %+v, %v", k, err)
	}
	// The current prefix keeps its own rules: its keys are never read as legacy ones.
	if _, err := gmk.Parse("gmk_cru_live_" + strings.Repeat("a", 30)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a current-prefix key of the wrong shape: %v", err)
	}
}

// TestLegacyPrefixStartingAnother: a prefix that starts with a legacy prefix is refused,
// since its keys would read as legacy keys as well.
func TestLegacyPrefixStartingAnother(t *testing.T) {
	old := validType()
	old.LegacyPrefixes = []string{"col_"}
	other := validType()
	other.Name, other.Prefix = "other", "col_new_"
	_, err := NewRegistry([]Type{old, other})
	if err == nil || !strings.Contains(err.Error(), `prefix "col_new_" starts with the legacy prefix "col_"`) {
		t.Fatalf("NewRegistry = %v", err)
	}
	old.LegacyPrefixes = []string{"lk_"} // the type's own prefix, lk_ing_, starts with it
	if _, err := NewRegistry([]Type{old}); err == nil {
		t.Fatal("a legacy prefix starting the type's own prefix was accepted")
	}
}

// Every type of every profile: generated keys parse back to their own type, with
// the lengths the type promises, and never repeat.
func TestGenerateParseRoundTrip(t *testing.T) {
	for pname, r := range profiles(t) {
		for _, typ := range r.Types() {
			t.Run(pname+"/"+typ.Name, func(t *testing.T) {
				seen := map[string]bool{}
				for i := 0; i < 1000; i++ {
					s := mustGenerate(t, r, typ.Name)
					if seen[s] {
						t.Fatalf("key repeated after %d keys", i)
					}
					seen[s] = true
					if !strings.HasPrefix(s, typ.Prefix) || len(s) != typ.KeyLen(typ.Prefix) {
						t.Fatalf("generated key has wrong shape (len %d, want %d)", len(s), typ.KeyLen(typ.Prefix))
					}
					k, err := r.Parse(s)
					if err != nil {
						t.Fatalf("generated key rejected: %v", err)
					}
					if k.Type.Name != typ.Name || k.Prefix != typ.Prefix || k.Legacy || len(k.Body) != typ.BodyLen() {
						t.Fatalf("parsed as %+v", k)
					}
					if render(k) != s {
						t.Fatal("parsed key does not re-render to its input")
					}
					// Its body and checksum under a legacy prefix make a legacy key.
					for _, p := range typ.LegacyPrefixes {
						in := legacyKey(t, r, s, p)
						k, err := r.Parse(in)
						if err != nil || k.Type.Name != typ.Name || k.Prefix != p || !k.Legacy || render(k) != in {
							t.Fatalf("legacy key with prefix %q parsed as %+v, %v", p, k, err)
						}
					}
				}
			})
		}
	}
}

// For checksum types, any single-byte substitution anywhere (other alphabet
// character, '_', any byte at all) is rejected: CRC32 catches every error burst
// shorter than 33 bits.
func TestChecksumCatchesEverySubstitution(t *testing.T) {
	for pname, r := range profiles(t) {
		for _, typ := range r.Types() {
			if !typ.Checksum {
				continue
			}
			t.Run(pname+"/"+typ.Name, func(t *testing.T) {
				for n := 0; n < 5; n++ {
					s := mustGenerate(t, r, typ.Name)
					buf := []byte(s)
					for i := range buf {
						orig := buf[i]
						for b := 0; b < 256; b++ {
							if byte(b) == orig {
								continue
							}
							buf[i] = byte(b)
							if k, err := r.Parse(string(buf)); err == nil {
								t.Fatalf("substituting byte %d with %q accepted: %+v", i, byte(b), k)
							}
						}
						buf[i] = orig
					}
				}
			})
		}
	}
}

// Without a checksum only the prefix and alphabet protect a key: a changed prefix
// must fail (unless it happens to be another registered prefix), while a body
// substitution inside the alphabet is, by design, accepted.
func TestNoChecksumPrefixChanges(t *testing.T) {
	for pname, r := range profiles(t) {
		for _, typ := range r.Types() {
			if typ.Checksum {
				continue
			}
			t.Run(pname+"/"+typ.Name, func(t *testing.T) {
				s := mustGenerate(t, r, typ.Name)
				buf := []byte(s)
				for i := 0; i < len(typ.Prefix); i++ {
					orig := buf[i]
					for b := 0; b < 256; b++ {
						if byte(b) == orig {
							continue
						}
						buf[i] = byte(b)
						in := string(buf)
						if _, registered := r.byPrefix[in[:strings.LastIndexByte(in, '_')+1]]; registered {
							continue
						}
						if _, err := r.Parse(in); err == nil {
							t.Fatalf("prefix byte %d changed to %q accepted", i, byte(b))
						}
					}
					buf[i] = orig
				}
				flipped := replaceAt(s, len(s)-1, map[bool]byte{true: '1', false: '0'}[s[len(s)-1] == '0'])
				if _, err := r.Parse(flipped); err != nil {
					t.Fatalf("in-alphabet body change rejected (%v); then this type has a checksum after all", err)
				}
			})
		}
	}
}

// Rejection sampling must leave no modulo bias: a chi-square test over 62
// symbols. Without the rejection the first 8 symbols would be 25% too likely and
// the statistic would be in the thousands.
func TestBase62Uniform(t *testing.T) {
	r := Default()
	typ, _ := r.Lookup("ingest")
	var counts [62]int
	total := 0
	for i := 0; i < 3000; i++ {
		s := mustGenerate(t, r, "ingest")
		for _, c := range []byte(s[len(typ.Prefix) : len(typ.Prefix)+typ.BodyLen()]) {
			counts[base62Val[c]-1]++
			total++
		}
	}
	exp := float64(total) / 62
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - exp
		chi += d * d / exp
	}
	// 61 degrees of freedom: P(chi2 > 130) is about 1e-7.
	if chi > 130 {
		t.Fatalf("base62 body is not uniform: chi-square %.1f over %d symbols, counts %v", chi, total, counts)
	}
}

func TestGenerateUnknownType(t *testing.T) {
	if _, err := Default().Generate("nope"); err == nil {
		t.Fatal("Generate of an unknown type succeeded")
	}
}

func TestChecksumMatchesStdlib(t *testing.T) {
	buf := make([]byte, 300)
	for n := range buf {
		if _, err := rand.Read(buf[:n]); err != nil {
			t.Fatal(err)
		}
		s := string(buf[:n])
		if got, want := crcString(s), crcIEEE(s); got != want {
			t.Errorf("crcString(%q) = %08x, want %08x", s, got, want)
		}
	}
	var cs [ChecksumLen]byte
	putChecksum(cs[:], 0)
	if string(cs[:]) != "000000" {
		t.Errorf("checksum of 0 = %q, want left-padded zeros", cs)
	}
	putChecksum(cs[:], 0xffffffff)
	if string(cs[:]) != "4gfFC3" { // 4294967295 in base62, 0-9A-Za-z
		t.Errorf("checksum of 2^32-1 = %q", cs)
	}
}

func TestDisplayPrefixAndRedaction(t *testing.T) {
	s := mustGenerate(t, Default(), "ingest")
	k, err := Default().Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	want := s[:len("lk_ing_")+8]
	if got := DisplayPrefix(k); got != want {
		t.Fatalf("DisplayPrefix = %q, want %q", got, want)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, k); strings.Contains(out, k.Body) || strings.Contains(out, k.Body[8:16]) {
			t.Errorf("%s of a Key prints the secret: %s", verb, out)
		}
	}
	if got := DisplayPrefix(Key{Prefix: "x_", Body: "abc"}); got != "x_abc" {
		t.Errorf("DisplayPrefix of a short body = %q", got)
	}
}

func TestParseAllocatesNothing(t *testing.T) {
	r := Default()
	good := mustGenerate(t, r, "ingest")
	inputs := map[string]string{
		"success":        good,
		"unknown prefix": "zz_" + good[7:],
		"no prefix":      "abcdef",
		"wrong length":   good[:len(good)-1],
		"bad alphabet":   replaceAt(good, 9, '-'),
		"bad checksum":   replaceAt(good, len(good)-1, map[bool]byte{true: '1', false: '0'}[good[len(good)-1] == '0']),
		"huge":           strings.Repeat("a", 10000),
		"empty":          "",
	}
	gmk, err := LoadProfile("gmk")
	if err != nil {
		t.Fatal(err)
	}
	legacyInputs := map[string]string{
		"legacy":                 "col_" + strings.Repeat("a", 20),
		"legacy with underscore": "col_abc_def_" + strings.Repeat("a", 20),
		"legacy too short":       "col_abc",
		"legacy bad alphabet":    "col_" + strings.Repeat("a", 20) + ".",
	}
	var sink Key
	for name, in := range legacyInputs {
		if n := testing.AllocsPerRun(1000, func() { sink, _ = gmk.Parse(in) }); n != 0 {
			t.Errorf("Parse (%s) allocates %v times", name, n)
		}
	}
	for name, in := range inputs {
		if n := testing.AllocsPerRun(1000, func() { sink, _ = r.Parse(in) }); n != 0 {
			t.Errorf("Parse (%s) allocates %v times", name, n)
		}
	}
	_ = sink
}
