package sender

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// A mint answered 429 or 503 is tried again after the Retry-After the server asks for.
func TestMintRetriesRateLimitAndUnavailable(t *testing.T) {
	clearEnv(t)
	mint, gw := newMintServer(t, keyformat.Default()), newGateway(t)
	for name, answers := range map[string][][2]string{
		"429 then 200":           {{"429", "1"}},
		"503 then 200":           {{"503", "1"}},
		"503 without a date":     {{"503", ""}},
		"429, 503, then 200":     {{"429", "0"}, {"503", "0"}},
		"an HTTP-date, then 200": {{"429", time.Now().Add(time.Second).UTC().Format(http.TimeFormat)}},
	} {
		t.Run(name, func(t *testing.T) {
			mint.refuseFirst(answers...)
			before := mint.calls.Load()
			began := time.Now()
			s := start(t, Options{Dir: t.TempDir(), APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
			require.Equal(t, SourceMinted, s.Key().Source)
			require.EqualValues(t, len(answers)+1, mint.calls.Load()-before)
			if answers[0][1] == "1" {
				require.GreaterOrEqual(t, time.Since(began), time.Second, "Retry-After is honoured")
			}
		})
	}
}

// Retrying is bounded: by attempts, by a total time (a Retry-After beyond it fails at
// once) and by the context.
func TestMintRetryBounds(t *testing.T) {
	clearEnv(t)
	mint, gw := newMintServer(t, keyformat.Default()), newGateway(t)
	opts := func() Options {
		return Options{Dir: t.TempDir(), APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()}
	}

	refusals := make([][2]string, 20)
	for i := range refusals {
		refusals[i] = [2]string{"503", "0"}
	}
	mint.refuseFirst(refusals...)
	before := mint.calls.Load()
	_, err := Start(context.Background(), opts())
	require.ErrorContains(t, err, "503 unavailable: try again")
	require.ErrorContains(t, err, "attempts")
	require.EqualValues(t, maxMintAttempts, mint.calls.Load()-before)

	mint.refuseFirst([2]string{"429", "60"})
	began := time.Now()
	_, err = Start(context.Background(), opts())
	require.ErrorContains(t, err, "429 rate_limited: too many anonymous keys from this address (retry after 60 s)")
	require.Less(t, time.Since(began), 2*time.Second, "no wait beyond the bound")

	mint.refuseFirst([2]string{"429", "10"})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began = time.Now()
	_, err = Start(ctx, opts())
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(began), 2*time.Second, "the context ends the wait")
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for value, want := range map[string]time.Duration{
		"":                     0,
		"3":                    3 * time.Second,
		" 2 ":                  2 * time.Second,
		"-1":                   0,
		"soon":                 0,
		"99999999999999999999": 0,
		now.Add(4 * time.Second).Format(http.TimeFormat): 4 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):      0,
	} {
		got, _ := retryAfter(value, now)
		require.Equal(t, want, got, "%q", value)
	}
}
