package testutil

import (
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
)

// NATSServer is a nats-server process of a test's own (JetStream on), for tests that stop
// and restart NATS. Restarts keep the port and the JetStream store.
type NATSServer struct {
	t     testing.TB
	port  int
	store string
	cmd   *exec.Cmd
	URL   string
}

// StartNATS starts nats-server (from PATH or /usr/sbin) on a free port; it is stopped when
// the test ends.
func StartNATS(t testing.TB) *NATSServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &NATSServer{t: t, port: port, store: t.TempDir(), URL: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func natsServerBinary() string {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	return "/usr/sbin/nats-server"
}

// Start starts the server (again) and waits until it accepts connections.
func (s *NATSServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(natsServerBinary(), "-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-js", "-sd", s.store) //nolint:gosec // fixed binary, our own arguments
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("testutil: start nats-server: %v", err)
	}
	Eventually(s.t, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), 100*time.Millisecond)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	}, "nats-server to listen")
}

// Stop stops the server and waits for it to exit.
func (s *NATSServer) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
