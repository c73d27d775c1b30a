package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/natsx"
)

// TestAnonStreamRetain: the anonymous stream is made with the fallback retention, then
// follows the anonymous type's data_ttl; no data_ttl keeps what holds, and a stream made
// again (deleted, a restarted server) is made with the retention in force.
func TestAnonStreamRetain(t *testing.T) {
	e := newEnv(t, "", withoutStreams())
	ctx := context.Background()
	streams, err := natsx.IngestStreamConfigs(e.ns, time.Hour, 48*time.Hour)
	require.NoError(t, err)
	a := NewAnonStream(e.js, streams[1])
	t.Cleanup(func() { _ = e.js.DeleteStream(context.Background(), a.Name()) })
	maxAge := func() (time.Duration, time.Duration) {
		s, err := e.js.Stream(ctx, natsx.AnonIngestStream(e.ns))
		require.NoError(t, err)
		return s.CachedInfo().Config.MaxAge, s.CachedInfo().Config.Duplicates
	}
	_, err = a.Ensure(ctx)
	require.NoError(t, err)
	age, dup := maxAge()
	require.Equal(t, 48*time.Hour, age)
	require.Equal(t, 2*time.Minute, dup)

	require.NoError(t, a.Retain(ctx, 24*time.Hour))
	age, _ = maxAge()
	require.Equal(t, 24*time.Hour, age)

	require.NoError(t, a.Retain(ctx, 0))
	age, _ = maxAge()
	require.Equal(t, 24*time.Hour, age, "no data_ttl keeps the retention in force")

	require.NoError(t, a.Retain(ctx, 30*time.Second))
	age, dup = maxAge()
	require.Equal(t, 30*time.Second, age)
	require.Equal(t, 30*time.Second, dup, "the duplicate window is cut to MaxAge")

	require.NoError(t, e.js.DeleteStream(ctx, a.Name()))
	_, err = a.Ensure(ctx)
	require.NoError(t, err)
	age, _ = maxAge()
	require.Equal(t, 30*time.Second, age)
}
