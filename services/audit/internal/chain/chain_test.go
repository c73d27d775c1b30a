package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sample() *Content {
	return &Content{
		ID: "aud_01", Time: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("x", 3600)),
		AccountID: "acc_1", ActorType: "user", ActorID: "usr_1", KeyID: "key_1",
		Action: "keys.create", ResourceType: "key", ResourceID: "key_2", Result: "ok",
		RequestID: "req_1", ClientIP: "192.0.2.1", UserAgent: "curl/8",
		Details: map[string]string{"b": "2", "a": "1"},
	}
}

func TestCanonicalIsFixed(t *testing.T) {
	// A golden value: changing the encoding breaks every stored chain, so it must be a
	// deliberate, versioned change. (Computed independently, in Python, from the layout
	// documented on Canonical.)
	got := Hash(Genesis, sample())
	require.Equal(t, "c072b07aeaf97682c4a964ab93e020ad2fda8a69768a7ca327902c02dddcee9c", got)
}

func TestCanonicalLayout(t *testing.T) {
	c := &Content{ID: "x", Time: time.Unix(0, 0)}
	b := Canonical(c)
	want := []byte{}
	for _, s := range []string{version, "x", "1970-01-01T00:00:00Z", "", "", "", "", "", "", "", "", "", "", ""} {
		want = append(want, byte(len(s)>>24), byte(len(s)>>16), byte(len(s)>>8), byte(len(s)))
		want = append(want, s...)
	}
	want = append(want, 0, 0, 0, 0)
	require.Equal(t, want, b)
	sum := sha256.Sum256(append([]byte(Genesis), b...))
	require.Equal(t, hex.EncodeToString(sum[:]), Hash(Genesis, c))
}

func TestEveryFieldCounts(t *testing.T) {
	base := Hash(Genesis, sample())
	mutations := map[string]func(*Content){
		"id":            func(c *Content) { c.ID += "x" },
		"time":          func(c *Content) { c.Time = c.Time.Add(time.Microsecond) },
		"account":       func(c *Content) { c.AccountID += "x" },
		"actor type":    func(c *Content) { c.ActorType = "account_key" },
		"actor id":      func(c *Content) { c.ActorID += "x" },
		"key":           func(c *Content) { c.KeyID += "x" },
		"action":        func(c *Content) { c.Action += "x" },
		"resource type": func(c *Content) { c.ResourceType += "x" },
		"resource id":   func(c *Content) { c.ResourceID += "x" },
		"result":        func(c *Content) { c.Result = "not_found" },
		"request":       func(c *Content) { c.RequestID += "x" },
		"ip":            func(c *Content) { c.ClientIP += "x" },
		"agent":         func(c *Content) { c.UserAgent += "x" },
		"detail value":  func(c *Content) { c.Details["a"] = "9" },
		"detail key":    func(c *Content) { delete(c.Details, "a"); c.Details["c"] = "1" },
		"detail added":  func(c *Content) { c.Details["z"] = "" },
		// Length prefixes keep field boundaries: moving a byte from one field to the next
		// is a different event.
		"boundary": func(c *Content) { c.Action, c.ResourceType = "keys.creat", "ekey" },
	}
	for name, mutate := range mutations {
		c := sample()
		mutate(c)
		require.NotEqual(t, base, Hash(Genesis, c), name)
	}
	require.NotEqual(t, base, Hash(Hash(Genesis, sample()), sample()), "prev_hash counts")
}

func TestTimeAtMicrosecondsInUTC(t *testing.T) {
	a, b := sample(), sample()
	b.Time = a.Time.UTC().Truncate(time.Microsecond)
	require.Equal(t, Hash(Genesis, a), Hash(Genesis, b), "zone and nanoseconds below µs do not count")
	require.Equal(t, "2026-03-04T04:06:07.123456Z", FormatTime(a.Time))
}

func TestDetailOrderDoesNotCount(t *testing.T) {
	a, b := sample(), sample()
	b.Details = map[string]string{}
	b.Details["a"], b.Details["b"] = "1", "2"
	for range 20 { // map iteration order varies between runs
		require.Equal(t, Hash(Genesis, a), Hash(Genesis, b))
	}
}

func build(n int) ([]Link, []*Content) {
	links := make([]Link, n)
	contents := make([]*Content, n)
	prev := Genesis
	for i := range n {
		c := sample()
		c.ID = fmt.Sprintf("aud_%03d", i)
		h := Hash(prev, c)
		links[i] = Link{Sequence: int64(i + 1), PrevHash: prev, Hash: h}
		contents[i] = c
		prev = h
	}
	return links, contents
}

func walk(links []Link, contents []*Content, cps ...Checkpoint) (int64, bool) {
	w := NewWalker(cps...)
	for i := range links {
		if !w.Next(links[i], contents[i]) {
			return w.Checked, false
		}
	}
	return w.Checked, true
}

func TestWalker(t *testing.T) {
	links, contents := build(10)
	n, ok := walk(links, contents)
	require.True(t, ok)
	require.EqualValues(t, 10, n)

	t.Run("tampered content names that event", func(t *testing.T) {
		links, contents := build(10)
		contents[4].ResourceID = "other"
		n, ok := walk(links, contents)
		require.False(t, ok)
		require.EqualValues(t, 5, n)
	})
	t.Run("a removed middle event breaks the next link", func(t *testing.T) {
		links, contents := build(10)
		links = append(links[:4:4], links[5:]...)
		contents = append(contents[:4:4], contents[5:]...)
		n, ok := walk(links, contents)
		require.False(t, ok)
		require.EqualValues(t, 5, n)
	})
	t.Run("a resequenced event is caught", func(t *testing.T) {
		links, contents := build(10)
		links[6].Sequence = 9
		_, ok := walk(links, contents)
		require.False(t, ok)
	})
	t.Run("the oldest events removed without a cut", func(t *testing.T) {
		links, contents := build(10)
		n, ok := walk(links[3:], contents[3:])
		require.False(t, ok)
		require.EqualValues(t, 1, n)
	})
	t.Run("retention: the walk starts where the cut says", func(t *testing.T) {
		links, contents := build(10)
		cut := Checkpoint{Kind: KindCut, Sequence: 4, Hash: links[2].Hash}
		n, ok := walk(links[3:], contents[3:], cut)
		require.True(t, ok)
		require.EqualValues(t, 7, n)
		_, ok = walk(links[4:], contents[4:], cut)
		require.False(t, ok, "more removed than the cut says")
		older := Checkpoint{Kind: KindCut, Sequence: 2, Hash: links[0].Hash}
		_, ok = walk(links[3:], contents[3:], older, cut)
		require.True(t, ok, "the latest cut counts")
		_, ok = walk(links[1:], contents[1:], older, cut)
		require.False(t, ok, "events before the latest cut came back")
	})
	t.Run("a rewrite after a head checkpoint", func(t *testing.T) {
		links, contents := build(10)
		head := Checkpoint{Kind: KindHead, Sequence: 8, Hash: links[7].Hash}
		// Rewrite from event 5 on, recomputing every hash so the links hold.
		contents[4].ResourceID = "forged"
		for i := 4; i < 10; i++ {
			links[i].PrevHash = links[i-1].Hash
			links[i].Hash = Hash(links[i].PrevHash, contents[i])
		}
		n, ok := walk(links, contents)
		require.True(t, ok, "without checkpoints a consistent rewrite verifies")
		require.EqualValues(t, 10, n)
		n, ok = walk(links, contents, head)
		require.False(t, ok)
		require.EqualValues(t, 8, n, "named at the checkpoint")
	})
	t.Run("the head must be the last event", func(t *testing.T) {
		links, contents := build(10)
		w := NewWalker()
		for i := range 8 {
			require.True(t, w.Next(links[i], contents[i]))
		}
		require.False(t, w.Ends(links[9].Sequence, links[9].Hash), "the last two were removed")
		require.True(t, w.Ends(links[7].Sequence, links[7].Hash))
		require.True(t, NewWalker().Ends(0, ""), "a chain that never had an event")
		require.False(t, NewWalker().Ends(10, links[9].Hash), "every event removed")
		cut := Checkpoint{Kind: KindCut, Sequence: 11, Hash: links[9].Hash}
		require.True(t, NewWalker(cut).Ends(10, links[9].Hash), "every event cut by retention")

		w = NewWalker(Checkpoint{Kind: KindHead, Sequence: 9, Hash: links[8].Hash})
		for i := range 8 {
			require.True(t, w.Next(links[i], contents[i]))
		}
		require.False(t, w.Ends(links[7].Sequence, links[7].Hash), "the head was moved back past a checkpoint")
	})
}

func TestCheckpointSignatures(t *testing.T) {
	seed, err := DeriveSeed("operator-token-123456")
	require.NoError(t, err)
	s, err := NewSigner(seed)
	require.NoError(t, err)
	c := Checkpoint{AccountID: "acc_1", Kind: KindHead, Sequence: 7, Hash: Genesis, SignedAt: time.Now()}
	s.Sign(&c)
	require.True(t, s.Valid(&c))
	for name, change := range map[string]func(*Checkpoint){
		"account":  func(c *Checkpoint) { c.AccountID = "acc_2" },
		"kind":     func(c *Checkpoint) { c.Kind = KindCut },
		"sequence": func(c *Checkpoint) { c.Sequence++ },
		"hash":     func(c *Checkpoint) { c.Hash = "1" + c.Hash[1:] },
		"time":     func(c *Checkpoint) { c.SignedAt = c.SignedAt.Add(time.Second) },
	} {
		forged := c
		change(&forged)
		require.False(t, s.Valid(&forged), name)
	}
	other, err := NewSigner(make([]byte, SeedLen))
	require.NoError(t, err)
	require.False(t, other.Valid(&c), "another key")
	_, err = NewSigner([]byte("short"))
	require.Error(t, err)
}

func BenchmarkHash(b *testing.B) {
	h := NewHasher()
	c := sample()
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Hash(Genesis, c)
	}
}
