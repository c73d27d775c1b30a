package periodic

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestNowRunsAtOnceThenEveryIntervalUntilCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- Now(ctx, time.Millisecond, func(context.Context) {
			if calls.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case err := <-done:
		if err != nil || calls.Load() < 3 {
			t.Fatalf("err %v after %d calls", err, calls.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Now did not return after cancel")
	}
}
