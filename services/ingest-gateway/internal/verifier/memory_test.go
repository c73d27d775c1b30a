package verifier

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
)

// BenchmarkCacheMemoryPerEntry: the heap a gateway holds per cached key, measured with
// runtime.MemStats over 100,000 entries made as a miss makes them (a VerifyKey answer
// decoded from the wire, turned into an entry, stored), and with the key's rate-limit
// bucket, which every key in use has. The figures feed docs/scale.md ("Cache memory").
func BenchmarkCacheMemoryPerEntry(b *testing.B) {
	const n = 100_000
	reg := keyformat.Default()
	wire := make([][]byte, n)
	for i := range wire {
		id := fmt.Sprintf("key_01jc%022d", i)
		resp := &keysv1.VerifyKeyResponse{Valid: true, Code: "ok", AllowedOrigins: []string{"https://app.example.com"}, Key: &keysv1.Key{
			Id: id, AccountId: "acc_01jc7z8yq3x0c4d5e6f7g8h9jk", ProjectId: "prj_01jc7z8yq3x0c4d5e6f7g8h9jm", Environment: "prd",
			Type: "ingest", Capabilities: []string{"ingest"}, CreatedAt: timestamppb.Now(),
		}}
		var err error
		if wire[i], err = proto.Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
	measure := func(fill func(v *Verifier, cache *keycache.Cache)) float64 {
		var before, after runtime.MemStats
		cache := keycache.New(time.Hour, time.Second)
		v := New(nil, "", cache, ratelimit.New(nil), ratelimit.New(nil), Config{})
		v.UseTypes(reg)
		runtime.GC()
		runtime.ReadMemStats(&before)
		fill(v, cache)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(cache)
		runtime.KeepAlive(v)
		return float64(after.HeapAlloc-before.HeapAlloc) / n
	}
	put := func(v *Verifier, cache *keycache.Cache, i int) *keycache.Entry {
		var resp keysv1.VerifyKeyResponse
		if err := proto.Unmarshal(wire[i], &resp); err != nil {
			b.Fatal(err)
		}
		e := v.entry(&resp)
		cache.Put(keycache.Sum(strconv.Itoa(i)), e, cache.Epoch(), time.Now().UnixNano())
		return e
	}
	var entry, withBucket float64
	for b.Loop() {
		entry = measure(func(v *Verifier, cache *keycache.Cache) {
			for i := range n {
				put(v, cache, i)
			}
		})
		withBucket = measure(func(v *Verifier, cache *keycache.Cache) {
			for i := range n {
				e := put(v, cache, i)
				v.perKey.Allow(e.KeyID, ratelimit.Limit{PerSecond: 1000, Burst: 1000})
			}
		})
	}
	b.ReportMetric(entry, "bytes/entry")
	b.ReportMetric(withBucket, "bytes/key-with-bucket")
	b.ReportMetric(0, "ns/op")
}
