//go:build !race

package keyformat

import (
	"strings"
	"testing"
)

// Built without -race, as hash_alloc_test.go is: `make test` runs it in its race-free pass.

func TestFindAllocatesOnlyTheResult(t *testing.T) {
	r := Default()
	key := mustGenerate(t, r, "ingest")
	plain := []byte(strings.Repeat("a log line with snake_case_words, lk_ing_ and ids like key_01jq0 ", 100))
	withKey := []byte(string(plain) + key)
	var n int
	if a := testing.AllocsPerRun(100, func() { n = len(r.Find(plain)) }); a != 0 {
		t.Errorf("Find of text without keys allocates %v times", a)
	}
	if a := testing.AllocsPerRun(100, func() { n = len(r.Find(withKey)) }); a != 1 {
		t.Errorf("Find of text with one key allocates %v times, want 1 (the result)", a)
	}
	_ = n
}
