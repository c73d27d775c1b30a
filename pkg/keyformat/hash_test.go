package keyformat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
)

func pepper(b byte) []byte { return bytes.Repeat([]byte{b}, MinPepperLen) }

func mustHasher(t testing.TB, p []byte) *Hasher {
	t.Helper()
	h, err := NewHasher(p)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func reference(p []byte, key string) [32]byte {
	m := hmac.New(sha256.New, p)
	m.Write([]byte(key))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

func TestNewHasherPepperLength(t *testing.T) {
	if _, err := NewHasher(make([]byte, MinPepperLen-1)); err == nil {
		t.Fatal("short pepper accepted")
	}
	if _, err := NewHasher(nil); err == nil {
		t.Fatal("nil pepper accepted")
	}
}

func TestHash(t *testing.T) {
	p := pepper(1)
	h := mustHasher(t, p)
	key := mustGenerate(t, Default(), "ingest")
	a, b := h.Hash(key), h.Hash(key)
	if a != b || !Equal(a, b) {
		t.Fatal("same input, different hash")
	}
	for _, in := range []string{"", "x", key, strings.Repeat("k", 255), strings.Repeat("k", 256), strings.Repeat("k", 257), strings.Repeat("long", 1000)} {
		if got, want := h.Hash(in), reference(p, in); got != want {
			t.Errorf("Hash(len %d) differs from crypto/hmac", len(in))
		}
	}
	if h2 := mustHasher(t, pepper(2)); Equal(h2.Hash(key), a) {
		t.Fatal("different pepper, same hash")
	}
	if Equal(h.Hash(key+"x"), a) {
		t.Fatal("different key, same hash")
	}
	c := a
	c[31] ^= 1
	if Equal(a, c) {
		t.Fatal("Equal ignores the last byte")
	}
}

func TestHasherCopiesPepper(t *testing.T) {
	p := pepper(1)
	h := mustHasher(t, p)
	p[0] = 9
	if h.Hash("k") != reference(pepper(1), "k") {
		t.Fatal("Hasher uses the caller's pepper slice")
	}
}

func TestHashConcurrent(t *testing.T) {
	p := pepper(3)
	h := mustHasher(t, p)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				key := strings.Repeat("ab", i%200)
				if h.Hash(key) != reference(p, key) {
					t.Error("concurrent Hash differs from reference")
					return
				}
			}
		}()
	}
	wg.Wait()
}
