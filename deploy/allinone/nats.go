package allinone

import (
	"errors"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedNATS starts a NATS server with JetStream in this process, on a free loopback port
// (never 4222, where a system NATS may listen), storing streams in a temp directory.
func embeddedNATS() (string, func(), error) {
	dir, err := os.MkdirTemp("", "latchkey-nats-")
	if err != nil {
		return "", nil, err
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "latchkey-dev",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   dir,
		// Room for the gateway's largest accepted body (4 MiB by default) and headers.
		MaxPayload: 8 << 20,
		NoSigs:     true,
	})
	if err != nil {
		return "", nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return "", nil, errors.New("embedded NATS did not start within 10s")
	}
	stop := func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}
	return ns.ClientURL(), stop, nil
}
