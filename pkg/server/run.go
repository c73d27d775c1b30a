package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/tlsfiles"
)

// Unit is one service, built and ready to serve: its gRPC server, its REST handlers, its
// background workers and what to close when it stops. One process may run several units
// (make run does), each on its own gRPC port, sharing one REST listener.
type Unit struct {
	Name    string
	GRPC    *GRPC
	Gateway Gateway
	// Ready reports whether the unit's dependencies are up.
	Ready func() bool
	// Workers run beside the servers until the context ends (outbox relays, consumers).
	Workers []func(ctx context.Context) error
	// Closers run in reverse order after everything has stopped.
	Closers []func()
	// HTTP is a listener of the unit's own beside the shared REST one (the gateway's
	// ingest endpoints); nil for none. It serves the unit's TLS when set, never asking for
	// a client certificate: customers' apps and browsers call it.
	HTTP *HTTPListener
	// TLS is the certificate the unit's listeners serve and its clients present (nil:
	// plaintext). The services' Run serve the shared REST listener with it too
	// (RunConfig.TLS).
	TLS *tlsfiles.Files
}

// HTTPListener is an address and what serves it.
type HTTPListener struct {
	Addr    string
	Handler http.Handler
}

// Close runs the unit's closers, last first.
func (u *Unit) Close() {
	for i := len(u.Closers) - 1; i >= 0; i-- {
		u.Closers[i]()
	}
}

// RunConfig says where the shared REST listener goes and how long shutdown may take.
type RunConfig struct {
	Logger *zap.Logger
	// HTTPAddr is the REST, /healthz and /metrics listener; "" for none.
	HTTPAddr string
	// Grace is how long in-flight calls get to finish on shutdown.
	Grace time.Duration
	// DrainDelay is how long Run answers not-ready (/healthz 503, gRPC NOT_SERVING) on
	// shutdown before it stops accepting, so load balancers notice first; 0 for none.
	DrainDelay time.Duration
	// MaxBodyBytes bounds REST request bodies.
	MaxBodyBytes int64
	// OnListening, if set, is told each bound address (name → address) once all listen.
	OnListening func(map[string]string)
	// TLS, if set, is served on the shared REST listener, never asking for a client
	// certificate: browsers and the command line call it.
	TLS *tlsfiles.Files
}

// Run listens on every address first (so a taken port fails fast, before anything is
// served), then serves all units until ctx ends or one part fails, then drains in this
// order:
//
//  1. not serving: /healthz answers 503 and gRPC health NOT_SERVING, for DrainDelay, so
//     load balancers stop sending;
//  2. stop accepting and finish in-flight calls: the REST listeners first (up to Grace;
//     their calls run through gRPC in process, which still serves them), then gRPC (up to
//     Grace again for calls still running);
//  3. stop the workers: the outbox relays publish what those calls committed before they
//     return (outbox.Relay.Run), consumers stop;
//  4. run the units' closers, last first: NATS and Postgres close last.
//
// It returns the first error of any part.
func Run(ctx context.Context, cfg RunConfig, units ...*Unit) error {
	defer func() {
		for i := len(units) - 1; i >= 0; i-- {
			units[i].Close()
		}
	}()
	addrs := map[string]string{}
	listeners := make([]net.Listener, len(units))
	for i, u := range units {
		lis, err := u.GRPC.Listen()
		if err != nil {
			return err
		}
		listeners[i] = lis
		if lis != nil {
			addrs[u.Name+" grpc"] = lis.Addr().String()
		}
	}
	own := make([]net.Listener, len(units))
	for i, u := range units {
		if u.HTTP == nil {
			continue
		}
		lis, err := net.Listen("tcp", u.HTTP.Addr)
		if err != nil {
			return err
		}
		own[i] = u.TLS.Listener(lis, true)
		addrs[u.Name+" http"] = lis.Addr().String()
	}
	var httpLis net.Listener
	if cfg.HTTPAddr != "" {
		lis, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return err
		}
		httpLis = cfg.TLS.Listener(lis, true)
		addrs["rest"] = lis.Addr().String()
	}
	var draining atomic.Bool
	h, err := NewHTTPHandler(ctx, HTTPConfig{
		Logger:       cfg.Logger,
		Gateways:     gatewaysOf(units),
		Ready:        func() bool { return !draining.Load() && allReady(units) },
		MaxBodyBytes: cfg.MaxBodyBytes,
		Rejected:     rejectedHook(units),
	})
	if err != nil {
		return err
	}

	// Each stage has its own context, ended in drain order; none ends with ctx itself.
	base := context.WithoutCancel(ctx)
	httpCtx, stopHTTP := context.WithCancel(base)
	defer stopHTTP()
	grpcCtx, stopGRPC := context.WithCancel(base)
	defer stopGRPC()
	workCtx, stopWorkers := context.WithCancel(base)
	defer stopWorkers()
	f := &failure{stop: make(chan struct{})}
	var httpParts, grpcParts, workers sync.WaitGroup
	for i, u := range units {
		f.run(&grpcParts, func() error { return u.GRPC.Serve(grpcCtx, listeners[i], cfg.Grace) })
		if u.Ready != nil {
			// Health follows readiness until the drain starts (Health.Shutdown ends it).
			f.run(&httpParts, func() error { followReadiness(httpCtx, u.GRPC, u.Ready); return nil })
		}
		for _, w := range u.Workers {
			f.run(&workers, func() error { return w(workCtx) })
		}
		if own[i] != nil {
			f.run(&httpParts, func() error { return ServeHTTP(httpCtx, own[i], u.HTTP.Handler, cfg.Grace) })
		}
	}
	if httpLis != nil {
		f.run(&httpParts, func() error { return ServeHTTP(httpCtx, httpLis, h, cfg.Grace) })
	}
	if cfg.OnListening != nil {
		cfg.OnListening(addrs)
	}

	select {
	case <-ctx.Done():
	case <-f.stop:
	}
	draining.Store(true)
	for _, u := range units {
		u.GRPC.Health.Shutdown()
	}
	if cfg.DrainDelay > 0 {
		t := time.NewTimer(cfg.DrainDelay)
		select {
		case <-t.C:
		case <-f.stop: // a part failed while waiting: no point in waiting on
		}
		t.Stop()
	}
	stopHTTP()
	httpParts.Wait()
	stopGRPC()
	grpcParts.Wait()
	stopWorkers()
	workers.Wait()
	return f.err()
}

// failure is the first error of Run's parts; stop closes with it, which starts the drain.
type failure struct {
	mu    sync.Mutex
	first error
	stop  chan struct{}
}

// run runs part on its own goroutine, counted in wg.
func (f *failure) run(wg *sync.WaitGroup, part func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := part(); err != nil {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.first == nil {
				f.first = err
				close(f.stop)
			}
		}
	}()
}

func (f *failure) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.first
}

func gatewaysOf(units []*Unit) []Gateway {
	var gws []Gateway
	for _, u := range units {
		if u.Gateway.Register != nil {
			gws = append(gws, u.Gateway)
		}
	}
	return gws
}

func allReady(units []*Unit) bool {
	for _, u := range units {
		if u.Ready != nil && !u.Ready() {
			return false
		}
	}
	return true
}

// rejectedHook sends calls the REST bridge refused to the OnCall hook of the unit that
// serves the method.
func rejectedHook(units []*Unit) func(context.Context, Call) {
	owners := map[string]*GRPC{}
	for _, u := range units {
		if u.GRPC.OnCall() == nil {
			continue
		}
		for svc, info := range u.GRPC.Server.GetServiceInfo() {
			for _, m := range info.Methods {
				owners["/"+svc+"/"+m.Name] = u.GRPC
			}
		}
	}
	return func(ctx context.Context, c Call) {
		g := owners[c.Method]
		if g == nil {
			return
		}
		// Say who the caller was, as the chain would have.
		if token := auth.BearerToken(ctx); token != "" && g.cfg.Authenticate != nil {
			c.Principal, c.AuthErr = g.cfg.Authenticate(ctx, token)
		}
		g.cfg.OnCall(ctx, c)
	}
}
