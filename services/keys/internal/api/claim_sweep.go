package api

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/services/keys/internal/link"
)

const (
	// claimSweepWait bounds how long a claim waits for the live gateways to confirm
	// key.claimed (as RevokeKey's receipt does by default): one that has not confirmed by
	// then does not hold the answer or the sweep back.
	claimSweepWait = 2 * time.Second
	// claimSweepTimeout bounds a whole sweep: the wait and one Link, with the deletion of
	// its copies should it fail.
	claimSweepTimeout = claimSweepWait + link.DefaultTimeout + link.UndoTimeout
)

// sweeper runs claims' sweeps after their answers (ClaimKey), and lets the service's
// shutdown wait for the ones under way (Server.Sweeps).
type sweeper struct {
	mu      sync.Mutex
	wg      sync.WaitGroup
	stopped bool
	// stopping ends when the service stops: sweeps under way stop waiting for gateways and
	// link at once.
	stopping context.Context
	stop     context.CancelFunc
}

func newSweeper() *sweeper {
	stopping, stop := context.WithCancel(context.Background())
	return &sweeper{stopping: stopping, stop: stop}
}

// start runs sweep on a goroutine of its own, counted for shutdown; once the service
// stops it runs sweep before returning (a call that outlived the grace).
func (w *sweeper) start(sweep func(stopping context.Context)) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		sweep(w.stopping)
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go func() {
		defer w.wg.Done()
		sweep(w.stopping)
	}()
}

// close makes the sweeps under way link without waiting further and returns once they
// all have.
func (w *sweeper) close() {
	w.mu.Lock()
	w.stopped = true
	w.stop()
	w.mu.Unlock()
	w.wg.Wait()
}

// Sweeps is a worker of the service (server.Unit.Workers): it returns once ctx has ended
// and the claims' sweeps under way have finished, which stop waiting for gateways then and
// only link, each within claimSweepTimeout. The server stops workers after the calls in
// flight have ended and before it closes NATS, so no sweep is cut off.
func (s *Server) Sweeps(ctx context.Context) error {
	<-ctx.Done()
	s.sweeps.close()
	return nil
}

// sweepClaim links to `to` what a gateway stored on anonymous key keyID's subject after the
// claim's link began, once the gateways have dropped the key: the claim waited for their
// confirmations of key.claimed before answering (waited); when it could not (no NATS
// connection to watch with) the sweep waits claimSweepWait first, no longer once stopping
// ends. Then it links the key again from where the claim's link stopped (at: the claim's
// attempt id, After its Result.Through), so it stores only the stragglers, each once, and
// nothing the claim linked. A sweep that fails deletes what it stored (link.Link), and the
// stragglers stay on the anonymous subject. It runs after the claim was answered, detached
// from the request: failures are logged with the key id, never a secret.
func (s *Server) sweepClaim(ctx context.Context, stopping context.Context, waited bool, keyID string, to link.Target, at link.Attempt) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), claimSweepTimeout)
	defer cancel()
	log := logging.From(ctx).With(zap.String("key_id", keyID), zap.Uint64("after_sequence", at.After))
	waitCtx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	defer context.AfterFunc(stopping, stopWaiting)()
	if !waited {
		t := time.NewTimer(claimSweepWait)
		select {
		case <-t.C:
		case <-waitCtx.Done():
		}
		t.Stop()
	}
	res, err := s.linker.Link(ctx, keyID, to, at)
	switch {
	case errors.Is(err, link.ErrCopiesRemain):
		log.Error("claim: sweeping the anonymous key's data after the claim failed, and some of its copies could not be deleted again", zap.Error(err))
	case err != nil:
		log.Warn("claim: sweeping the anonymous key's data after the claim failed; requests stored on its subject since the linking stay there",
			zap.Error(err))
	case res.Requests > 0:
		log.Info("claim: linked the anonymous key's requests stored after the linking began", zap.Int64("stragglers_linked", res.Requests))
	default:
		log.Debug("claim: swept the anonymous key's data; nothing new", zap.Int64("stragglers_linked", 0))
	}
}
