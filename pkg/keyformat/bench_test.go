package keyformat

import (
	"crypto/sha256"
	"testing"
)

// The four benchmarks run side by side to show what verification costs before the
// cache: parsing with the checksum, the keyed hash, both, and a bare SHA-256 of
// the same bytes for scale.

func benchKey(b *testing.B) (*Registry, string) {
	r := Default()
	return r, mustGenerate(b, r, "ingest")
}

func BenchmarkParse(b *testing.B) {
	r, key := benchKey(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Parse(key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	_, key := benchKey(b)
	h := mustHasher(b, pepper(7))
	b.ReportAllocs()
	for b.Loop() {
		h.Hash(key)
	}
}

func BenchmarkParseChecksumHash(b *testing.B) {
	r, key := benchKey(b)
	h := mustHasher(b, pepper(7))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Parse(key); err != nil {
			b.Fatal(err)
		}
		h.Hash(key)
	}
}

func BenchmarkSHA256(b *testing.B) {
	_, key := benchKey(b)
	kb := []byte(key)
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(kb)
	}
}

// BenchmarkParseLegacy parses a legacy key whose body holds '_': the current-prefix lookup
// misses, and the legacy prefix is found by a scan.
func BenchmarkParseLegacy(b *testing.B) {
	r, err := LoadProfile("gmk")
	if err != nil {
		b.Fatal(err)
	}
	key := "col_3hT0abcd_efgh-ijkl_mnopqrstuvwxyz012345"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Parse(key); err != nil {
			b.Fatal(err)
		}
	}
}
