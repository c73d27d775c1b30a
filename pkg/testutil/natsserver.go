package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// NATSServer is a nats-server process of a test's own (JetStream on), for tests that stop
// and restart NATS. Restarts keep the port, and the JetStream store unless wiped.
type NATSServer struct {
	t      testing.TB
	port   int
	store  string
	config string // a config file, or ""
	cmd    *exec.Cmd
	URL    string
}

// StartNATS starts nats-server (from PATH or /usr/sbin) on a free port; it is stopped when
// the test ends. Config lines, e.g. "max_payload: 16384", go into a config file.
func StartNATS(t testing.TB, config ...string) *NATSServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &NATSServer{t: t, port: port, store: t.TempDir(), URL: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	if len(config) > 0 {
		s.config = filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(s.config, []byte(strings.Join(config, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
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
	args := []string{"-a", "127.0.0.1", "-p", fmt.Sprint(s.port), "-js", "-sd", s.store}
	if s.config != "" {
		args = append(args, "-c", s.config)
	}
	s.cmd = exec.Command(natsServerBinary(), args...) //nolint:gosec // fixed binary, our own arguments
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

// Restart stops the server and starts it again; with wipe, on an empty JetStream store, as
// after a lost disk: every stream and consumer is gone.
func (s *NATSServer) Restart(wipe bool) {
	s.t.Helper()
	s.Stop()
	if wipe {
		if err := os.RemoveAll(s.store); err != nil {
			s.t.Fatalf("testutil: wipe nats store: %v", err)
		}
	}
	s.Start()
}
