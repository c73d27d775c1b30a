package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ConnLimits bound what one client connection may hold of a gRPC server. A zero field
// takes its value from DefaultConnLimits.
type ConnLimits struct {
	// MaxConns is how many network connections the server holds at once; one more is
	// closed as soon as it is accepted (its client sees a reset and may retry elsewhere)
	// and counted in latchkey_grpc_connections_refused_total.
	MaxConns int
	// HandshakeTimeout is how long a new connection has to send the HTTP/2 preface and
	// settings (grpc.ConnectionTimeout); one that sends nothing is closed after it.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that has had no call for this long (with a GOAWAY,
	// so a well-behaved client just reconnects when it next needs to).
	IdleTimeout time.Duration
	// KeepaliveTime is how long a connection may be silent before the server pings it,
	// and KeepaliveTimeout how long the ping's answer may take before the connection is
	// taken for dead (a half-open peer) and closed.
	KeepaliveTime, KeepaliveTimeout time.Duration
	// MinPingInterval is the shortest interval between client keepalive pings the server
	// tolerates; a client pinging more often is sent GOAWAY (too_many_pings).
	MinPingInterval time.Duration
	// MaxConnectionAge ends a connection (GOAWAY, after MaxConnectionAgeGrace for the
	// calls under way) once it is this old, give or take 10%: its client connects again and
	// resolves the name again, so a replica added behind a name gets calls (DialPeer).
	MaxConnectionAge, MaxConnectionAgeGrace time.Duration
	// MaxHeaderListBytes bounds a call's metadata (HTTP/2 header list, as RFC 9113 §6.5.2
	// counts it); a call over it is refused before any handler runs. The default is twice
	// the HTTP edge's MaxHeaderBytes, so whatever the REST bridge forwards always fits.
	MaxHeaderListBytes uint32
}

// DefaultConnLimits are the limits of a server whose GRPCConfig.Conn leaves them zero.
var DefaultConnLimits = ConnLimits{
	MaxConns:         4096,
	HandshakeTimeout: 10 * time.Second,
	IdleTimeout:      5 * time.Minute,
	KeepaliveTime:    time.Minute,
	KeepaliveTimeout: 20 * time.Second,
	MinPingInterval:  10 * time.Second,
	// Long enough to cost nothing (one TLS handshake per client per 5 minutes), short
	// enough that a scaled-out keys or accounts takes load within minutes.
	MaxConnectionAge:      5 * time.Minute,
	MaxConnectionAgeGrace: 30 * time.Second,
	// Twice the HTTP edge's limit: the bridge forwards a subset of an HTTP request's headers.
	MaxHeaderListBytes: 2 * MaxHeaderBytes,
}

func (l ConnLimits) withDefaults() ConnLimits {
	d := DefaultConnLimits
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	l.HandshakeTimeout = pick(l.HandshakeTimeout, d.HandshakeTimeout)
	l.IdleTimeout = pick(l.IdleTimeout, d.IdleTimeout)
	l.KeepaliveTime = pick(l.KeepaliveTime, d.KeepaliveTime)
	l.KeepaliveTimeout = pick(l.KeepaliveTimeout, d.KeepaliveTimeout)
	l.MinPingInterval = pick(l.MinPingInterval, d.MinPingInterval)
	l.MaxConnectionAge = pick(l.MaxConnectionAge, d.MaxConnectionAge)
	l.MaxConnectionAgeGrace = pick(l.MaxConnectionAgeGrace, d.MaxConnectionAgeGrace)
	if l.MaxHeaderListBytes == 0 {
		l.MaxHeaderListBytes = d.MaxHeaderListBytes
	}
	return l
}

// serverOptions are the gRPC options that enforce l (all but MaxConns; see capListener).
func (l ConnLimits) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ConnectionTimeout(l.HandshakeTimeout),
		grpc.MaxHeaderListSize(l.MaxHeaderListBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     l.IdleTimeout,
			MaxConnectionAge:      l.MaxConnectionAge,
			MaxConnectionAgeGrace: l.MaxConnectionAgeGrace,
			Time:                  l.KeepaliveTime,
			Timeout:               l.KeepaliveTimeout,
		}),
		// Pings on an idle connection are allowed (they do not keep it from IdleTimeout).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.MinPingInterval, PermitWithoutStream: true}),
	}
}

var connsRefused = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "latchkey_grpc_connections_refused_total",
	Help: "Connections a gRPC server closed on accept because it already held its maximum (ConnLimits.MaxConns), by service.",
}, []string{"service"})

// capListener holds at most max connections: Accept closes any beyond that at once rather
// than leaving them in the kernel's backlog, where their clients would wait unanswered.
type capListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused prometheus.Counter
}

func limitConns(lis net.Listener, max int, service string) net.Listener {
	return &capListener{Listener: lis, max: int64(max), refused: connsRefused.WithLabelValues(service)}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Inc()
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
	}
}

// countedConn gives its slot back on its first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}
