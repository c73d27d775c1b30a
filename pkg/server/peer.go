package server

import (
	"google.golang.org/grpc"

	"github.com/latchkey/latchkey/pkg/tlsfiles"
)

// peerServiceConfig spreads calls over every address a peer's name resolves to, one call
// after the other (gRPC's round_robin; pick_first, the default, would send everything to
// the first): with a headless Kubernetes Service, or several A records, each of a
// service's replicas takes its share of the calls. See https://github.com/grpc/grpc/blob/master/doc/service_config.md.
const peerServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// DialPeer returns a client of another Latchkey service's gRPC API at addr ("host:port",
// resolved by DNS, or any target grpc.NewClient takes), over TLS with files (plaintext for
// nil files), its calls spread over every address addr resolves to. It does not connect
// until the first call, so the peer may start later. The names are re-resolved when a
// connection ends, which the peer's servers make happen at least every
// ConnLimits.MaxConnectionAge: a replica added later gets calls within that.
func DialPeer(addr string, files *tlsfiles.Files) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, files.DialOption(), grpc.WithDefaultServiceConfig(peerServiceConfig))
}
