// Package callmeta reads who is on the other end of a gRPC call: its address and user
// agent, whether it came straight over gRPC or through the in-process REST bridge.
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

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
