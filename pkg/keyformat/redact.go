package keyformat

import (
	"slices"
	"strings"
	"sync"
)

// Redacted replaces the body (and checksum) of every key Redact finds; the prefix stays, so
// a reader still learns which kind of key was pasted.
const Redacted = "[redacted]"

// The shape of a session token (services/accounts/internal/token makes them, pkg/auth tells
// them from keys by the prefix): SessionTokenPrefix and SessionTokenBodyLen base62
// characters, 32 random bytes. Declared here, beside the keys' shapes, so that Redact finds
// session tokens as it finds keys: both are bearer credentials.
const (
	SessionTokenPrefix  = "lks_"
	SessionTokenBodyLen = 43
)

// Bounds of the checksum rule of Redact, which recognises keys of profiles this process
// never loaded: a prefix of at most maxGenericPrefix characters and a body of at least
// minGenericBody (the shortest body any valid type has: 8 random bytes in hex is 16).
const (
	maxGenericPrefix = 32
	minGenericBody   = 16
)

// builtins are Default and every built-in profile.
var builtins = sync.OnceValue(func() []*Registry {
	var regs []*Registry
	for _, name := range ProfileNames() {
		if r, err := LoadProfile(name); err == nil {
			regs = append(regs, r)
		}
	}
	return regs
})

// loaded are the profiles LoadProfile read from files in this process.
var loaded struct {
	sync.Mutex
	regs []*Registry
}

// remember adds a profile read from a file to the registries Redact recognises.
func remember(r *Registry) {
	loaded.Lock()
	defer loaded.Unlock()
	if !slices.Contains(loaded.regs, r) {
		loaded.regs = append(loaded.regs, r)
	}
}

// registries are the registries Redact recognises keys of.
func registries() []*Registry {
	loaded.Lock()
	defer loaded.Unlock()
	return append(slices.Clip(builtins()), loaded.regs...)
}

// Redact returns s with every key in it replaced by its prefix and Redacted: anything that
// parses as a key of a known profile (Default, the built-in profiles and every profile
// LoadProfile read, current and legacy prefixes; a legacy prefix at the start of a word
// followed by at least LegacyBodyMin characters of [A-Za-z0-9_-]), and anything shaped like a checksummed
// key of any profile (a lower-case prefix ending in '_', a base62 body and a checksum that
// matches, as secret scanners find them), and every session token (SessionTokenPrefix and
// SessionTokenBodyLen base62 characters). Everything else is kept as it was. Use it on
// every text a client or a log may see that can quote input: error messages, audit events.
func Redact(s string) string {
	if strings.IndexByte(s, '_') < 0 {
		return s
	}
	var spans []span
	regs := registries()
	forRuns(s, func(a, b int) {
		for _, r := range regs {
			r.scan(s, a, b, false, func(start, end int, k Key) {
				spans = append(spans, span{start, start + len(k.Prefix), end})
			})
		}
		spans = appendChecksummed(spans, s, a, b)
		spans = appendSessionTokens(spans, s, a, b)
	})
	if len(spans) == 0 {
		return s
	}
	var out strings.Builder
	at := 0
	for _, sp := range merge(spans) {
		out.WriteString(s[at:sp.start])
		out.WriteString(s[sp.start:sp.bodyAt])
		out.WriteString(Redacted)
		at = sp.end
	}
	out.WriteString(s[at:])
	return out.String()
}

// span is a key found in a string: s[start:bodyAt] is its prefix, s[bodyAt:end] the rest.
type span struct{ start, bodyAt, end int }

// appendChecksummed finds, in the run s[a:b] (forRuns), every <prefix><base62
// body><checksum> whose checksum matches, whatever its prefix: the keys of profiles this
// process never loaded.
func appendChecksummed(spans []span, s string, a, b int) []span {
	for j := a; j < b; j++ {
		if s[j] != '_' {
			continue
		}
		e := j + 1
		for e < b && base62Val[s[e]] != 0 {
			e++
		}
		if e-(j+1) < minGenericBody+ChecksumLen {
			continue
		}
		want, ok := checksumValue(s[e-ChecksumLen : e])
		if !ok {
			continue
		}
		for i := j; i >= a && j+1-i <= maxGenericPrefix && isPrefixChar(s[i]); i-- {
			if s[i] < 'a' || s[i] > 'z' || e-i > MaxKeyLen {
				continue
			}
			if uint64(crcString(s[i:e-ChecksumLen])) == want {
				spans = append(spans, span{i, j + 1, e})
				break
			}
		}
	}
	return spans
}

// appendSessionTokens finds, in the run s[a:b] (forRuns), every SessionTokenPrefix followed by at
// least SessionTokenBodyLen base62 characters: a session token, the first
// SessionTokenBodyLen of them its body.
func appendSessionTokens(spans []span, s string, a, b int) []span {
	word := s[a:b]
	for from := 0; ; {
		i := strings.Index(word[from:], SessionTokenPrefix)
		if i < 0 {
			return spans
		}
		i += from
		from = i + 1
		body, end := i+len(SessionTokenPrefix), i+len(SessionTokenPrefix)+SessionTokenBodyLen
		if end > len(word) {
			return spans
		}
		if !allBase62(word[body:end]) {
			continue
		}
		spans = append(spans, span{a + i, a + body, a + end})
		from = end
	}
}

func allBase62(s string) bool {
	for k := 0; k < len(s); k++ {
		if base62Val[s[k]] == 0 {
			return false
		}
	}
	return true
}

func checksumValue(c string) (uint64, bool) {
	var v uint64
	for k := 0; k < len(c); k++ {
		d := base62Val[c[k]]
		if d == 0 {
			return 0, false
		}
		v = v*62 + uint64(d-1)
	}
	return v, true
}

// merge sorts spans by start and joins overlapping ones, keeping the first one's prefix.
func merge(spans []span) []span {
	slices.SortFunc(spans, func(x, y span) int { return x.start - y.start })
	out := spans[:1]
	for _, sp := range spans[1:] {
		last := &out[len(out)-1]
		if sp.start < last.end {
			last.end = max(last.end, sp.end)
			continue
		}
		out = append(out, sp)
	}
	return out
}

func isPrefixChar(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' }
