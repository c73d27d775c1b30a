package quota

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestCapHoldsUnderConcurrency: fifty concurrent takes against a cap of ten pass exactly
// ten times, whatever the interleaving (as replicas would).
func TestCapHoldsUnderConcurrency(t *testing.T) {
	q := New(testutil.DB(t, "quotatest", Migrations))
	ctx := context.Background()
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := q.Take(ctx, "acc_1", "rotate keys", 10)
			switch {
			case err == nil:
				ok.Add(1)
			case apierr.IsCode(err, apierr.RateLimited):
				refused.Add(1)
				e := apierr.FromError(err)
				if e.Metadata["tier"] != "hourly" || e.RetryAfter <= 0 || e.RetryAfter > Window {
					t.Errorf("refusal %+v", e)
				}
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 10 || refused.Load() != 40 {
		t.Fatalf("passed %d, refused %d; want 10 and 40", ok.Load(), refused.Load())
	}
	if err := q.Take(ctx, "acc_2", "rotate keys", 10); err != nil {
		t.Fatal("caps are per account:", err)
	}
	if err := q.Take(ctx, "acc_1", "delete projects", 10); err != nil {
		t.Fatal("caps are per action:", err)
	}
}
