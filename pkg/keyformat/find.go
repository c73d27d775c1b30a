package keyformat

import (
	"strings"
	"unsafe"
)

// Found is one key Find found in a text. It holds positions, never the key itself, so a
// result can be logged or kept without keeping a secret.
type Found struct {
	// Type is the key's type; shared, must not be modified.
	Type *Type
	// Start and End are byte offsets into the text: text[Start:End] is the whole key,
	// prefix to checksum.
	Start, End int
	// Legacy reports that the key carries one of Type.LegacyPrefixes.
	Legacy bool
	// Verified reports that the key's checksum matched (Type.Checksum, current prefix):
	// a key of this profile beyond reasonable doubt (one chance in 2^32 for a string of the
	// right shape). When false only the prefix and the exact shape matched, the key of a
	// type without a checksum (deeptracer's dt_ 24 hex, lumiqtrace's 64 hex) or of a legacy
	// prefix: a weak find, which text of that shape would give too.
	Verified bool
}

// Find returns every key of r's profile in text, in the order they appear. A key is a
// whole token: a key of a current prefix is a maximal run of [A-Za-z0-9_] (so "-", "=",
// quotes, spaces and the like end it, and "xlk_ing_…" or "…_lk_ing_…" is no key); a key of
// a legacy prefix, whose body may hold '-', a maximal run of [A-Za-z0-9_-]. Each token is
// decided by r.Parse alone, so Find recognises exactly what a gateway accepts (prefix,
// length, alphabet, checksum) and no more; results therefore follow any change to Parse.
// The two kinds of token can overlap only when a legacy key's body holds a whole current
// key after a '-'; both are reported then.
//
// Find runs in time linear in len(text), reads text without copying it and allocates only
// the result (nil when there is none). text must not change during the call. It is what
// the keys service's leak reports and `latchkey scan` rest on; Redact shares its scanner.
func (r *Registry) Find(text []byte) []Found {
	if len(text) == 0 {
		return nil
	}
	// A read-only view: nothing Find returns points into it.
	return r.FindString(unsafe.String(unsafe.SliceData(text), len(text))) //nolint:gosec // read-only view, not retained
}

// FindString is Find for a string.
func (r *Registry) FindString(text string) []Found {
	var out []Found
	forRuns(text, func(a, b int) {
		r.scan(text, a, b, true, func(start, end int, k Key) {
			out = append(out, Found{
				Type: k.Type, Start: start, End: end, Legacy: k.Legacy,
				Verified: k.Type.Checksum && !k.Legacy,
			})
		})
	})
	return out
}

// isKeyChar reports a character a key of a current prefix can hold: the base62 alphabet
// (hex is a subset) and the '_' of prefixes.
func isKeyChar(c byte) bool { return base62Val[c] != 0 || c == '_' }

// isRunChar reports a character any key can hold: isKeyChar, and the '-' legacy bodies
// may carry.
func isRunChar(c byte) bool { return isKeyChar(c) || c == '-' }

// forRuns calls fn for each maximal run s[a:b] of isRunChar characters that holds a '_'
// (every prefix ends with one): the only places a key can be.
func forRuns(s string, fn func(a, b int)) {
	for a := 0; a < len(s); {
		if !isRunChar(s[a]) {
			a++
			continue
		}
		b, underscore := a, false
		for b < len(s) && isRunChar(s[b]) {
			underscore = underscore || s[b] == '_'
			b++
		}
		if underscore {
			fn(a, b)
		}
		a = b
	}
}

// scan is the one scanner behind Find and Redact: it calls yield for each key of r in the
// run s[a:b] (a maximal run of isRunChar characters, see forRuns), each decided by r.Parse.
//
// With whole set (Find), a key is a whole token: the run itself for a legacy prefix, and
// each maximal stretch of isKeyChar characters in it (the run cut at '-') for a current
// one. Every byte is parsed at most twice, so scanning is linear.
//
// Without whole (Redact), a key may start anywhere in the run, at any occurrence of a
// prefix, and end anywhere: a key pasted into a longer token is still found. A current
// prefix's key is its exact length from there; a legacy prefix's, only at the start of the
// run, the rest of the run (at most LegacyBodyMax past the prefix) or else the length
// Type.KeyLen gives. Each
// occurrence costs at most two Parse calls of at most MaxKeyLen bytes.
func (r *Registry) scan(s string, a, b int, whole bool, yield func(start, end int, k Key)) {
	if whole {
		for _, info := range r.prefixes {
			if !info.legacy || !strings.HasPrefix(s[a:b], info.prefix) {
				continue
			}
			if k, err := r.Parse(s[a:b]); err == nil && k.Legacy {
				yield(a, b, k)
			}
			break // prefixes are unique; a run has one beginning
		}
		for c := a; c < b; {
			if s[c] == '-' {
				c++
				continue
			}
			d := c
			for d < b && s[d] != '-' {
				d++
			}
			if k, err := r.Parse(s[c:d]); err == nil && !k.Legacy {
				yield(c, d, k)
			}
			c = d
		}
		return
	}
	for _, info := range r.prefixes {
		for from := a; from < b; {
			i := strings.Index(s[from:b], info.prefix)
			if i < 0 {
				break
			}
			start := from + i
			from = start + 1
			if info.legacy {
				// A legacy key has no checksum to tell it from a word that merely holds its
				// prefix ("protocol_…" holds "col_"): it counts only where a run begins.
				if start != a {
					continue
				}
				end := min(b, start+len(info.prefix)+LegacyBodyMax)
				if k, err := r.Parse(s[start:end]); err == nil {
					yield(start, end, k)
					continue
				}
			}
			if end := start + info.keyLen; end <= b {
				if k, err := r.Parse(s[start:end]); err == nil {
					yield(start, end, k)
				}
			}
		}
	}
}
