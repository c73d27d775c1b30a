package natsx

import (
	"net"

	"github.com/nats-io/nats.go"
)

// OnConnectionLost calls f when the connection is lost and again before every attempt to
// connect. The disconnect handler runs as soon as nats.go gets to it (it keeps handlers
// queued on a goroutine of their own); the dialer runs on the reconnecting goroutine
// itself, so whatever f does (distrust a cache, say) is done before anything can flow on
// a new connection, however late the handler. Handlers set by earlier options (Connect's
// logging) still run.
func OnConnectionLost(f func()) nats.Option {
	return func(o *nats.Options) error {
		prev := o.DisconnectedErrCB
		o.DisconnectedErrCB = func(c *nats.Conn, err error) {
			f()
			if prev != nil {
				prev(c, err)
			}
		}
		o.CustomDialer = dialer{f: f, d: &net.Dialer{Timeout: o.Timeout}}
		return nil
	}
}

type dialer struct {
	f func()
	d *net.Dialer
}

func (d dialer) Dial(network, address string) (net.Conn, error) {
	d.f()
	return d.d.Dial(network, address)
}
