package keyformat

import (
	"hash/crc32"
	"testing"
)

// profiles loads every built-in profile, default included.
func profiles(t testing.TB) map[string]*Registry {
	t.Helper()
	out := map[string]*Registry{}
	for _, name := range ProfileNames() {
		r, err := LoadProfile(name)
		if err != nil {
			t.Fatalf("LoadProfile(%q): %v", name, err)
		}
		out[name] = r
	}
	return out
}

// render rebuilds a key from its parts: what Parse accepted must be exactly this. A
// legacy key has no checksum.
func render(k Key) string {
	s := k.Prefix + k.Body
	if k.Type.Checksum && !k.Legacy {
		var cs [ChecksumLen]byte
		putChecksum(cs[:], crc32.ChecksumIEEE([]byte(s)))
		s += string(cs[:])
	}
	return s
}

// withPrefix re-issues key under another prefix with a correct checksum, to build
// cross-prefix cases.
func withPrefix(t testing.TB, r *Registry, key, prefix string) string {
	t.Helper()
	k, err := r.Parse(key)
	if err != nil {
		t.Fatalf("Parse(generated key): %v", err)
	}
	return render(Key{Type: k.Type, Prefix: prefix, Body: k.Body})
}

// legacyKey is key's body and checksum under a legacy prefix: a valid legacy key, as
// another system might have minted it.
func legacyKey(t testing.TB, r *Registry, key, prefix string) string {
	t.Helper()
	k, err := r.Parse(key)
	if err != nil {
		t.Fatalf("Parse(generated key): %v", err)
	}
	return prefix + key[len(k.Prefix):]
}

func mustGenerate(t testing.TB, r *Registry, typeName string) string {
	t.Helper()
	s, err := r.Generate(typeName)
	if err != nil {
		t.Fatalf("Generate(%q): %v", typeName, err)
	}
	return s
}

func crcIEEE(s string) uint32 { return crc32.ChecksumIEEE([]byte(s)) }
