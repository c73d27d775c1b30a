package keyformat

import (
	"strings"
	"testing"
)

// FuzzParse feeds untrusted input to every profile's Parse: it must never panic,
// and whatever it accepts must be exactly the key its parts describe.
func FuzzParse(f *testing.F) {
	regs := profiles(f)
	for _, r := range regs {
		for _, typ := range r.Types() {
			s := mustGenerate(f, r, typ.Name)
			f.Add(s)
			f.Add(s[:len(s)-1])
			f.Add(s + "0")
			f.Add(strings.ToUpper(s))
			for _, p := range typ.LegacyPrefixes {
				f.Add(legacyKey(f, r, s, p))
				f.Add(p + "a_b-c_" + strings.Repeat("Z", LegacyBodyMin))
				f.Add(p + strings.Repeat("-", LegacyBodyMax+1))
			}
		}
	}
	for _, junk := range []string{"", "_", "__", "a_", "lk_ing_", "Bearer lk_ing_abc", "\x00\xff_", strings.Repeat("_", 300), strings.Repeat("a", 257), "dt_" + strings.Repeat("g", 24), "col_"} {
		f.Add(junk)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for name, r := range regs {
			k, err := r.Parse(in)
			if err != nil {
				if k != (Key{}) {
					t.Fatalf("%s: failed Parse returned %+v", name, k)
				}
				continue
			}
			if k.Type == nil {
				t.Fatalf("%s: accepted key without a type", name)
			}
			if got := render(k); got != in {
				t.Fatalf("%s: accepted %q re-renders as %q", name, in, got)
			}
			if want := k.Prefix != k.Type.Prefix; k.Legacy != want {
				t.Fatalf("%s: Legacy = %v for prefix %q of type %q", name, k.Legacy, k.Prefix, k.Type.Name)
			}
			if k.Legacy && (len(k.Body) < LegacyBodyMin || len(k.Body) > LegacyBodyMax || strings.Trim(k.Body, legacyAlphabet) != "") {
				t.Fatalf("%s: accepted a legacy body of %d characters outside the legacy rule", name, len(k.Body))
			}
		}
	})
}
