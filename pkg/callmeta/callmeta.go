// Package callmeta reads who is on the other end of a gRPC call: its address, user agent
// and Origin, whether it came straight over gRPC or through the in-process REST bridge.
package callmeta

import (
	"context"
	"net"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// ClientIP is the caller's address: the gRPC peer's, or for calls through the in-process
// REST bridge (whose peer is not a network address) the last X-Forwarded-For entry, the
// one the bridge itself added; earlier entries are whatever the client claimed.
func ClientIP(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			return host
		}
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-forwarded-for"); len(v) > 0 {
			parts := strings.Split(v[len(v)-1], ",")
			return clip(strings.TrimSpace(parts[len(parts)-1]), 64)
		}
	}
	return ""
}

// UserAgent is the caller's User-Agent, as the REST bridge forwarded it or gRPC sent it.
func UserAgent(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, k := range []string{"x-user-agent", "user-agent"} {
		if v := md.Get(k); len(v) > 0 {
			return clip(v[0], 256)
		}
	}
	return ""
}

// MaxOriginLen bounds an Origin worth comparing: a longer one is no origin any project
// lists (accounts bounds allowed_origins far below it), so Origin reports none.
const MaxOriginLen = 2048

// Origin is the page a browser's call came from: the Origin header as the REST bridge
// forwards it ("x-origin"), or "origin" metadata sent over gRPC. It is "" when there is
// none, when more than one value was sent (no browser sends two) or when it is longer
// than MaxOriginLen.
func Origin(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, k := range []string{"x-origin", "origin"} {
		v := md.Get(k)
		if len(v) == 0 {
			continue
		}
		if len(v) > 1 || len(v[0]) > MaxOriginLen {
			return ""
		}
		return v[0]
	}
	return ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
