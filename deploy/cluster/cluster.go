// Package cluster runs Latchkey as a platform team would on several machines, on one:
// three nats-server nodes clustered with JetStream (every stream on all three), two keys
// and two accounts replicas, one audit and three ingest gateways, each its own process of
// its own binary, on loopback ports, with one Postgres database. `make cluster`
// (cmd/cluster) runs it until Ctrl-C; the chaos test drives the same code, killing and
// restarting processes under load.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// Service names, as in topology.json.
const (
	NATS     = "nats"
	Accounts = "accounts"
	Keys     = "keys"
	Audit    = "audit"
	Gateway  = "ingest-gateway"
)

// binaries are the packages Build compiles, by the binary each makes: the service's name,
// and nats-server.
var binaries = map[string]string{
	"nats-server": "github.com/nats-io/nats-server/v2",
	Accounts:      "./services/accounts/cmd/accounts",
	Keys:          "./services/keys/cmd/keys",
	Audit:         "./services/audit/cmd/audit",
	Gateway:       "./services/ingest-gateway/cmd/ingest-gateway",
}

// Build compiles nats-server (the version deploy/allinone embeds, pinned in this module's
// go.mod) and the four services into binDir, from the repository at root, with ldflags
// (the Makefile's LDFLAGS: version and revision; may be empty).
func Build(ctx context.Context, root, binDir, ldflags string) error {
	if err := os.MkdirAll(binDir, 0o750); err != nil {
		return err
	}
	for name, pkg := range binaries {
		cmd := exec.CommandContext(ctx, "go", "build", //nolint:gosec // the caller's own build flags and this package's list
			"-ldflags", ldflags, "-o", filepath.Join(binDir, name), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("cluster: go build %s: %w\n%s", pkg, err, out)
		}
	}
	return nil
}

// Config is what Start needs.
type Config struct {
	// BinDir holds the binaries Build made.
	BinDir string
	// Dir receives the NATS nodes' configurations and stores (nats/), the processes' logs
	// (logs/<name>.log), topology.json while the cluster runs, and the secrets KeptSecrets
	// keeps. One cluster at a time may use it (Lock).
	Dir string
	// DatabaseURL is the Postgres database every service uses, each in its own schema
	// (Database makes one).
	DatabaseURL string
	// Namespace is LATCHKEY_NAMESPACE ("latchkey" if empty).
	Namespace string
	// Env is added to every service's environment (e.g. LATCHKEY_LOG_LEVEL=debug); it
	// comes last, so it may replace what Start sets.
	Env []string
	// ServicesFirst starts the services when one NATS node of three is up, before the
	// others, as a scheduler may: with no JetStream quorum yet they wait for their streams
	// (LATCHKEY_STREAM_WAIT) while the cluster forms.
	ServicesFirst bool
	// Ready bounds the wait for every process to answer its health check (2 minutes if 0).
	Ready time.Duration
}

// Addresses are where a process listens: HTTP (a service's REST bridge with /healthz and
// /metrics, a gateway's OTLP/HTTP, a NATS node's monitoring), gRPC, and a NATS node's
// client URL.
type Addresses struct {
	HTTP string `json:"http,omitempty"`
	GRPC string `json:"grpc,omitempty"`
	NATS string `json:"nats,omitempty"`
}

// Process is one entry of topology.json: a running process of the cluster.
type Process struct {
	// Name is unique in the cluster: nats-1, keys-2, gateway-3...
	Name string `json:"name"`
	// Service is one of NATS, Accounts, Keys, Audit, Gateway.
	Service string `json:"service"`
	// PID is the operating system's process id (0 while stopped).
	PID       int       `json:"pid"`
	Addresses Addresses `json:"addresses"`
}

// proc is a process the cluster runs, and how to run it again.
type proc struct {
	Process
	bin  string
	args []string
	env  []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Cluster is a running cluster.
type Cluster struct {
	cfg   Config
	procs []*proc
	// Secrets are the services' LATCHKEY_OPERATOR_TOKEN, LATCHKEY_PEPPER and
	// AUDIT_SIGNING_KEY: the same at every start with the same Dir (KeptSecrets).
	Secrets
	// NATSURL lists every node's client URL, comma-separated (the services' NATS_URL).
	NATSURL string
}

// Start runs migrations, then every process, and returns once the cluster is ready:
// every process's /healthz answers 200 and every service that resolves sessions through
// accounts (keys, audit) or keys through keys (gateways) reaches it (waitServing). Then it writes topology.json in
// cfg.Dir (replacing a stale one); Stop removes it. On error, whatever it started is
// stopped.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Namespace == "" {
		cfg.Namespace = "latchkey"
	}
	if cfg.Ready <= 0 {
		cfg.Ready = 2 * time.Minute
	}
	// Logs start afresh with each cluster (a restarted process appends to its own).
	if err := os.RemoveAll(filepath.Join(cfg.Dir, "logs")); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "logs"), filepath.Join(cfg.Dir, "nats")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, err
		}
	}
	if err := os.Remove(topologyFile(cfg.Dir)); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	secrets, err := KeptSecrets(cfg.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, Secrets: secrets}
	if err := c.plan(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	for _, svc := range []string{Accounts, Keys, Audit} {
		if err := c.migrate(ctx, svc); err != nil {
			return nil, err
		}
	}
	nodes, services := c.byService(NATS), c.notNATS()
	groups := [][]*proc{nodes, services}
	if cfg.ServicesFirst {
		groups = [][]*proc{nodes[:1], services, nodes[1:]}
	}
	for _, g := range groups {
		for _, p := range g {
			if err := c.start(p); err != nil {
				return nil, err
			}
		}
		switch {
		case cfg.ServicesFirst && g[0] == nodes[0]:
			// Up, but alone: a cluster of three has no JetStream quorum with one node.
			if err := c.waitListening(ctx, nodes[0]); err != nil {
				return nil, err
			}
		case !cfg.ServicesFirst && g[0] == nodes[0]:
			// The cluster formed, with JetStream, before any service connects.
			rctx, cancel := context.WithTimeout(ctx, cfg.Ready)
			for _, n := range nodes {
				if err = c.waitReady(rctx, n); err != nil {
					break
				}
			}
			cancel()
			if err != nil {
				return nil, err
			}
		}
	}
	rctx, cancel := context.WithTimeout(ctx, cfg.Ready)
	defer cancel()
	for _, p := range c.procs {
		if err := c.waitReady(rctx, p); err != nil {
			return nil, err
		}
	}
	for _, p := range append(append(c.byService(Keys), c.byService(Audit)...), c.byService(Gateway)...) {
		if err := c.waitServing(rctx, p); err != nil {
			return nil, err
		}
	}
	return c, c.writeTopology()
}

// plan chooses every process's ports and environment.
func (c *Cluster) plan() error {
	ports, err := freePorts(3*3 + 8*2)
	if err != nil {
		return err
	}
	next := func() string {
		p := ports[0]
		ports = ports[1:]
		return fmt.Sprintf("127.0.0.1:%d", p)
	}
	// NATS: client, monitoring and route ports of each node first, so every node's
	// configuration can list every route.
	var clients, monitors, routes []string
	for range 3 {
		clients, monitors, routes = append(clients, next()), append(monitors, next()), append(routes, next())
	}
	urls := make([]string, 3)
	for i := range 3 {
		urls[i] = "nats://" + clients[i]
	}
	c.NATSURL = strings.Join(urls, ",")
	for i := range 3 {
		name := fmt.Sprintf("nats-%d", i+1)
		conf := filepath.Join(c.cfg.Dir, "nats", name+".conf")
		if err := os.WriteFile(conf, []byte(natsConfig(name, clients[i], monitors[i], routes[i], routes, filepath.Join(c.cfg.Dir, "nats", name))), 0o600); err != nil {
			return err
		}
		c.add(name, NATS, Addresses{NATS: urls[i], HTTP: monitors[i]}, []string{"-c", conf}, nil)
	}
	common := []string{
		"LATCHKEY_NAMESPACE=" + c.cfg.Namespace, "LATCHKEY_OPERATOR_TOKEN=" + c.OperatorToken,
		"NATS_URL=" + c.NATSURL, "LATCHKEY_STREAM_REPLICAS=3", "DATABASE_URL=" + c.cfg.DatabaseURL,
		"LATCHKEY_SHUTDOWN_GRACE=2s",
	}
	acc := []Addresses{{HTTP: next(), GRPC: next()}, {HTTP: next(), GRPC: next()}}
	keys := []Addresses{{HTTP: next(), GRPC: next()}, {HTTP: next(), GRPC: next()}}
	// One gRPC address per peer: each replica and gateway talks to one replica of each
	// service it needs, spread evenly (on Kubernetes a Service balances instead).
	for i, a := range acc {
		c.add(fmt.Sprintf("accounts-%d", i+1), Accounts, a, nil, append(slicesClone(common),
			"ACCOUNTS_GRPC_ADDR="+a.GRPC, "ACCOUNTS_HTTP_ADDR="+a.HTTP, "KEYS_GRPC_ADDR="+keys[i].GRPC))
	}
	for i, a := range keys {
		c.add(fmt.Sprintf("keys-%d", i+1), Keys, a, nil, append(slicesClone(common),
			"KEYS_GRPC_ADDR="+a.GRPC, "KEYS_HTTP_ADDR="+a.HTTP, "ACCOUNTS_GRPC_ADDR="+acc[i].GRPC, "LATCHKEY_PEPPER="+c.Pepper))
	}
	au := Addresses{HTTP: next(), GRPC: next()}
	c.add("audit-1", Audit, au, nil, append(slicesClone(common),
		"AUDIT_GRPC_ADDR="+au.GRPC, "AUDIT_HTTP_ADDR="+au.HTTP, "ACCOUNTS_GRPC_ADDR="+acc[0].GRPC, "KEYS_GRPC_ADDR="+keys[0].GRPC,
		"AUDIT_SIGNING_KEY="+c.SigningKey))
	for i := range 3 {
		g := Addresses{HTTP: next(), GRPC: next()}
		name := fmt.Sprintf("gateway-%d", i+1)
		c.add(name, Gateway, g, nil, append(slicesClone(common),
			"GATEWAY_ID="+name, "GATEWAY_HTTP_ADDR="+g.HTTP, "GATEWAY_GRPC_ADDR="+g.GRPC, "KEYS_GRPC_ADDR="+keys[i%2].GRPC))
	}
	for _, p := range c.procs {
		if p.Service != NATS {
			p.env = append(p.env, c.cfg.Env...)
		}
	}
	return nil
}

func (c *Cluster) add(name, service string, a Addresses, args, env []string) {
	c.procs = append(c.procs, &proc{
		Process: Process{Name: name, Service: service, Addresses: a},
		bin:     filepath.Join(c.cfg.BinDir, binary(service)), args: args, env: env,
		log: filepath.Join(c.cfg.Dir, "logs", name+".log"),
	})
}

// natsConfig is one node's configuration: JetStream stored in store, routes to every node.
func natsConfig(name, client, monitor, route string, routes []string, store string) string {
	rs := make([]string, len(routes))
	for i, r := range routes {
		rs[i] = "nats-route://" + r
	}
	return fmt.Sprintf(`server_name: %s
listen: %s
http: %s
# Room for the gateway's largest accepted body (4 MiB by default) and headers.
max_payload: 8MB
jetstream {
  store_dir: %q
  max_memory_store: 256MB
  max_file_store: 4GB
}
cluster {
  name: latchkey
  listen: %s
  routes: [%s]
}
`, name, client, monitor, store, route, strings.Join(rs, ", "))
}

// migrate runs `<svc> migrate` once, before any replica starts.
func (c *Cluster) migrate(ctx context.Context, svc string) error {
	p := c.byService(svc)[0]
	cmd := exec.CommandContext(ctx, p.bin, "migrate") //nolint:gosec // a binary Build made
	cmd.Env = append(os.Environ(), p.env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cluster: %s migrate: %w\n%s", svc, err, out)
	}
	return nil
}

// start runs p. Its output is appended to its log; it is killed if this process dies
// (Pdeathsig), so an interrupted launcher leaves no orphans.
func (c *Cluster) start(p *proc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("cluster: %s is running", p.Name)
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...) //nolint:gosec // a binary Build made, with arguments plan made
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("cluster: start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	p.cmd, p.done, p.PID = cmd, done, cmd.Process.Pid
	return nil
}

// stop sends sig to p and waits up to grace for it to exit, then kills it.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd, p.PID = nil, 0
}

// Kill kills the named process with SIGKILL, as a crashed machine would, and waits for it
// to be gone.
func (c *Cluster) Kill(name string) error {
	p, err := c.find(name)
	if err != nil {
		return err
	}
	p.stop(syscall.SIGKILL, time.Minute)
	return c.writeTopology()
}

// Restart starts the named process again, on the same addresses (a NATS node with its
// store), and waits until it answers its health check or ctx ends.
func (c *Cluster) Restart(ctx context.Context, name string) error {
	p, err := c.find(name)
	if err != nil {
		return err
	}
	if err := c.start(p); err != nil {
		return err
	}
	if err := c.writeTopology(); err != nil {
		return err
	}
	return c.waitReady(ctx, p)
}

// Stop stops every process: gateways first, then the other services (SIGTERM: they drain),
// then the NATS nodes; whatever has not exited after its grace is killed. It removes
// topology.json: its pids are gone.
func (c *Cluster) Stop() {
	defer func() { _ = os.Remove(c.Topology()) }()
	for _, svc := range []string{Gateway, Keys, Accounts, Audit, NATS} {
		var wg sync.WaitGroup
		for _, p := range c.byService(svc) {
			wg.Go(func() { p.stop(syscall.SIGTERM, 15*time.Second) })
		}
		wg.Wait()
	}
}

// Processes returns every process, in start order (NATS nodes, accounts, keys, audit,
// gateways).
func (c *Cluster) Processes() []Process {
	out := make([]Process, len(c.procs))
	for i, p := range c.procs {
		p.mu.Lock()
		out[i] = p.Process
		p.mu.Unlock()
	}
	return out
}

// Service returns the processes of one service.
func (c *Cluster) Service(svc string) []Process {
	var out []Process
	for _, p := range c.Processes() {
		if p.Service == svc {
			out = append(out, p)
		}
	}
	return out
}

// Topology is the path of topology.json: Processes as JSON, written once the cluster is
// ready and whenever Kill or Restart changes a pid, removed by Stop.
func (c *Cluster) Topology() string { return topologyFile(c.cfg.Dir) }

func topologyFile(dir string) string { return filepath.Join(dir, "topology.json") }

func (c *Cluster) writeTopology() error {
	b, err := json.MarshalIndent(c.Processes(), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(c.Topology(), append(b, '\n'), 0o600)
}

// Log returns the named process's log so far (for a test's failure message).
func (c *Cluster) Log(name string) string {
	p, err := c.find(name)
	if err != nil {
		return err.Error()
	}
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (c *Cluster) find(name string) (*proc, error) {
	for _, p := range c.procs {
		if p.Name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("cluster: no process %q", name)
}

func (c *Cluster) byService(svc string) []*proc {
	var out []*proc
	for _, p := range c.procs {
		if p.Service == svc {
			out = append(out, p)
		}
	}
	return out
}

func (c *Cluster) notNATS() []*proc {
	var out []*proc
	for _, p := range c.procs {
		if p.Service != NATS {
			out = append(out, p)
		}
	}
	return out
}

// waitReady polls p's health check until it answers 200: /healthz of a service (ready:
// its streams exist, it follows the events stream...), a NATS node's /healthz (JetStream
// up, the node caught up with its cluster).
func (c *Cluster) waitReady(ctx context.Context, p *proc) error {
	url := "http://" + p.Addresses.HTTP + "/healthz"
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		select {
		case <-done:
			return fmt.Errorf("cluster: %s exited before it was ready; its log:\n%s", p.Name, tail(c.Log(p.Name), 4000))
		default:
		}
		if resp, err := client.Get(url); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not ready (%s: %s); its log:\n%s", p.Name, url, last, tail(c.Log(p.Name), 4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitServing waits until p, a service that checks credentials through another (keys and
// audit resolve sessions through accounts, a gateway keys through keys), answers an
// unknown credential with 401 rather than 503: /healthz says nothing of those gRPC
// connections, and one dialled while its peer was still starting backs off and fails
// calls fast (503 unavailable) for seconds after the peer is up.
func (c *Cluster) waitServing(ctx context.Context, p *proc) error {
	method, path, token, body := http.MethodGet, "/v1/keys", "lks_"+strings.Repeat("0", 43), "" // a session token's shape; no such session
	switch p.Service {
	case Audit:
		path = "/v1/audit/verify"
	case Gateway:
		key, err := keyformat.Default().Generate("ingest") // a key's shape; no such key
		if err != nil {
			return err
		}
		method, path, token, body = http.MethodPost, "/v1/logs", key, "{}"
	}
	url := "http://" + p.Addresses.HTTP + path
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := client.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s cannot check credentials (%s %s with an unknown one: %s); its log:\n%s", p.Name, method, url, last, tail(c.Log(p.Name), 4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitListening waits until p accepts connections on its NATS client port.
func (c *Cluster) waitListening(ctx context.Context, p *proc) error {
	addr := strings.TrimPrefix(p.Addresses.NATS, "nats://")
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s not listening on %s: %w", p.Name, addr, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitReady waits until the named process answers its health check.
func (c *Cluster) WaitReady(ctx context.Context, name string) error {
	p, err := c.find(name)
	if err != nil {
		return err
	}
	return c.waitReady(ctx, p)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// freePorts returns n distinct ports free on loopback now, below the kernel's ephemeral
// range (32768 and up on Linux), so that no process's outgoing connection takes one
// before the process meant to listen on it has started.
func freePorts(n int) ([]int, error) {
	var out []int
	off, err := rand.Int(rand.Reader, big.NewInt(10000))
	if err != nil {
		return nil, err
	}
	base := 20000 + int(off.Int64())
	for p := base; p < 32768 && len(out) < n; p++ {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		_ = l.Close()
		out = append(out, p)
	}
	if len(out) < n {
		return nil, fmt.Errorf("cluster: %d free ports wanted from %d, found %d", n, base, len(out))
	}
	return out, nil
}

func binary(service string) string {
	if service == NATS {
		return "nats-server"
	}
	return service
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }
