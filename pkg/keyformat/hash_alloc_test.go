//go:build !race

package keyformat

import (
	"strings"
	"testing"
)

// Built without -race only: the race detector makes sync.Pool drop items on purpose, so
// allocation counts mean nothing under it. `make test` runs this file in a second,
// race-free pass.

func TestHashAllocatesNothing(t *testing.T) {
	h := mustHasher(t, pepper(4))
	key := mustGenerate(t, Default(), "ingest")
	long := strings.Repeat("x", 1000)
	var sink [32]byte
	if n := testing.AllocsPerRun(1000, func() { sink = h.Hash(key) }); n != 0 {
		t.Errorf("Hash allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { sink = h.Hash(long) }); n != 0 {
		t.Errorf("Hash of a long input allocates %v times", n)
	}
	var eq bool
	if n := testing.AllocsPerRun(1000, func() { eq = Equal(sink, sink) }); n != 0 {
		t.Errorf("Equal allocates %v times", n)
	}
	_ = eq
}
