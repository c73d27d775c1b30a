package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// TestChaos runs the cluster, drives OTLP load through all three gateways, and mid-load
// kills (SIGKILL) the NATS node leading the events stream together with a gateway, then a
// keys replica, then the node leading the events stream by then, and brings each back;
// meanwhile it revokes keys that every gateway has cached, with a receipt, and keeps
// presenting them. The services start before the NATS cluster has a quorum, as a
// scheduler may start them (issue 11, fault b). It asserts:
//   - every payload a gateway acknowledged (2xx) is in the ingest stream;
//   - no gateway accepts a revoked key once its revocation has returned, and every receipt
//     is complete;
//   - every management call that succeeded is in the audit log, whose chain verifies;
//
// and logs how long each client saw errors (README "Cluster").
func TestChaos(t *testing.T) {
	// The binaries first, on their own clock: from a cold build cache they take minutes.
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	bin := filepath.Join(root, ".cache", "cluster", "test-bin")
	require.NoError(t, Build(t.Context(), root, bin, ""))
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	c := startCluster(ctx, t, root, bin)
	s := newSuite(t, c)
	s.setUp(ctx)

	const loadKeys, victims = 3, 11
	var clients []*loader
	for _, gw := range c.Service(Gateway) {
		for k := range loadKeys {
			clients = append(clients, &loader{id: len(clients), gateway: gw.Name, url: "http://" + gw.Addresses.HTTP, key: s.loadKeys[k]})
		}
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, l := range clients {
		wg.Go(func() { l.run(loadCtx) })
	}
	// Every victim key is presented at every gateway throughout, so each has it cached.
	pres := &presenters{revokedAt: map[string]time.Time{}}
	presCtx, stopPresent := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	for _, v := range s.victims[:victims] {
		for _, gw := range c.Service(Gateway) {
			pwg.Go(func() { pres.run(presCtx, "http://"+gw.Addresses.HTTP, gw.Name, v) })
		}
	}

	// The faults, on a timeline from the start of the load; the revocations on their own,
	// each waiting for its receipt.
	start := time.Now()
	at := func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) }
	leader := s.eventsLeader(ctx)
	var receipts []receipt
	revocations := make(chan struct{})
	go func() {
		defer close(revocations)
		for i, d := range []time.Duration{3500, 5000, 6500, 8000, 11000, 15000, 17000, 20500, 22000, 23500, 27000} {
			at(d * time.Millisecond)
			receipts = append(receipts, s.revoke(ctx, s.victims[i], pres))
		}
	}()
	at(3 * time.Second)
	t.Logf("%5.1fs kill -9 %s (leads %s) and gateway-2", time.Since(start).Seconds(), leader, "LATCHKEY_EVENTS")
	require.NoError(t, c.Kill(leader))
	require.NoError(t, c.Kill("gateway-2"))
	at(10 * time.Second)
	t.Logf("%5.1fs restart %s and gateway-2", time.Since(start).Seconds(), leader)
	require.NoError(t, c.Restart(ctx, leader))
	require.NoError(t, c.Restart(ctx, "gateway-2"))
	t.Logf("%5.1fs %s and gateway-2 ready", time.Since(start).Seconds(), leader)
	at(14 * time.Second)
	t.Logf("%5.1fs kill -9 keys-1", time.Since(start).Seconds())
	require.NoError(t, c.Kill("keys-1"))
	at(18 * time.Second)
	t.Logf("%5.1fs restart keys-1", time.Since(start).Seconds())
	require.NoError(t, c.Restart(ctx, "keys-1"))
	t.Logf("%5.1fs keys-1 ready", time.Since(start).Seconds())
	// Now the services are spread over the nodes: the leader of the events stream dies
	// under gateways that stay connected to the others.
	at(20 * time.Second)
	leader = s.eventsLeader(ctx)
	t.Logf("%5.1fs kill -9 %s (leads LATCHKEY_EVENTS)", time.Since(start).Seconds(), leader)
	require.NoError(t, c.Kill(leader))
	at(26 * time.Second)
	t.Logf("%5.1fs restart %s", time.Since(start).Seconds(), leader)
	require.NoError(t, c.Restart(ctx, leader))
	t.Logf("%5.1fs %s ready", time.Since(start).Seconds(), leader)
	at(30 * time.Second)
	stopLoad()
	wg.Wait()
	<-revocations
	at(32 * time.Second)
	stopPresent()
	pwg.Wait()
	for _, r := range receipts {
		t.Logf("revoke %s returned at %5.1fs: %d of %d live gateways applied, complete %v, waited %d ms",
			r.key, r.at.Sub(start).Seconds(), r.Applied, r.Live, r.Complete, r.WaitedMS)
	}
	pres.mu.Lock()
	t.Logf("presentations of victim keys: %d, after their revocation returned: %d, accepted then: %d", pres.total, pres.afterRevoke, len(pres.accepted))
	for _, a := range pres.accepted[:min(len(pres.accepted), 10)] {
		t.Logf("accepted: %s", a)
	}
	pres.mu.Unlock()
	// How long clients saw errors.
	byGateway := map[string][]string{}
	for _, l := range clients {
		byGateway[l.gateway] = append(byGateway[l.gateway], fmt.Sprintf("client %d: %d payloads, errors for %.1fs (longest %.1fs, failed tries by status %v)",
			l.id, len(l.acked), l.errTotal.Seconds(), l.errLongest.Seconds(), l.codes))
	}
	for _, gw := range c.Service(Gateway) {
		t.Logf("%s: %s", gw.Name, strings.Join(byGateway[gw.Name], "; "))
	}

	// 0 acknowledged payloads missing.
	acked := map[string]bool{}
	for _, l := range clients {
		for _, tag := range l.acked {
			acked[tag] = true
		}
	}
	stored := s.storedTags(ctx)
	var missing []string
	for tag := range acked {
		if !stored[tag] {
			missing = append(missing, tag)
		}
	}
	sort.Strings(missing)
	t.Logf("payloads acknowledged: %d, found in %s: %d", len(acked), "LATCHKEY_INGEST", len(stored))
	require.NotEmpty(t, acked)
	require.Empty(t, missing, "acknowledged payloads missing from the ingest stream")

	// 0 revoked keys accepted after the revocation returned; receipts complete.
	require.Empty(t, pres.accepted, "revoked keys accepted after the revocation returned")
	for _, r := range receipts {
		require.True(t, r.Complete, "receipt of %s at %.1fs: %+v", r.key, r.at.Sub(start).Seconds(), r)
	}

	// 0 audit events lost.
	s.checkAudit(ctx)
}

// startCluster starts a cluster of the binaries in bin on a database of its own, the
// services before the NATS nodes have a quorum; its logs stay in .cache/cluster/chaos.
func startCluster(ctx context.Context, t *testing.T, root, bin string) *Cluster {
	t.Helper()
	admin := os.Getenv("LATCHKEY_TEST_DATABASE_URL")
	if admin == "" {
		admin = LocalPostgres
	}
	name := "latchkey_chaos_" + randomHex(6)
	dbURL, err := Database(ctx, admin, name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = DropDatabase(context.Background(), admin, name) })
	// Kept after the test (logs/ for a failure), replaced by the next run.
	dir := filepath.Join(root, ".cache", "cluster", "chaos")
	require.NoError(t, os.RemoveAll(dir))
	c, err := Start(ctx, Config{
		BinDir: bin, Dir: dir, DatabaseURL: dbURL, ServicesFirst: true,
		// Every client of the test has the same address: no limit per address, or the
		// presenters' refused (revoked) keys would have the load's keys refused with 429.
		Env: []string{
			"LATCHKEY_LIMIT_IP=off", "LATCHKEY_LIMIT_KEY=off", "LATCHKEY_LIMIT_ACCOUNT=off",
			"GATEWAY_FAILED_AUTH_PER_SECOND=1000000", "GATEWAY_FAILED_AUTH_BURST=1000000",
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the processes' logs: %s", filepath.Join(dir, "logs"))
		}
		c.Stop()
	})
	var procs []Process
	b, err := os.ReadFile(c.Topology())
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &procs))
	require.Len(t, procs, 11)
	return c
}

// suite is the test's view of the cluster: an account, its keys, its management calls.
type suite struct {
	t        *testing.T
	c        *Cluster
	token    string
	project  string
	loadKeys []string
	victims  []victim
	// calls are the management calls that succeeded: action and resource id.
	mu    sync.Mutex
	calls [][2]string
}

type victim struct{ id, secret string }

func newSuite(t *testing.T, c *Cluster) *suite { return &suite{t: t, c: c} }

// call makes a REST call to the first of the service's replicas that answers (a killed
// replica refuses the connection), and decodes a 2xx answer into out.
func (s *suite) call(ctx context.Context, svc, method, path, token string, body, out any) int {
	s.t.Helper()
	var lastErr error
	for _, p := range s.c.Service(svc) {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+p.Addresses.HTTP+path, rd)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode >= 500 {
			lastErr = fmt.Errorf("%s %s at %s: %d %s", method, path, p.Name, resp.StatusCode, b)
			continue
		}
		if resp.StatusCode/100 == 2 && out != nil {
			require.NoError(s.t, json.Unmarshal(b, out), "%s", b)
		}
		if resp.StatusCode/100 != 2 {
			s.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode
	}
	s.t.Fatalf("%s %s: no replica of %s answered: %v", method, path, svc, lastErr)
	return 0
}

func (s *suite) ok(action, id string) {
	s.mu.Lock()
	s.calls = append(s.calls, [2]string{action, id})
	s.mu.Unlock()
}

func (s *suite) setUp(ctx context.Context) {
	var signup struct {
		Session struct{ Token string } `json:"session"`
	}
	require.Equal(s.t, 200, s.call(ctx, Accounts, "POST", "/v1/accounts", "", map[string]string{
		"email": "chaos-" + randomHex(4) + "@example.com", "password": "Correct-Horse-Battery-9", "account_name": "Chaos",
	}, &signup))
	s.token = signup.Session.Token
	var proj struct {
		Project struct{ ID string } `json:"project"`
	}
	require.Equal(s.t, 200, s.call(ctx, Accounts, "POST", "/v1/projects", s.token, map[string]string{"name": "chaos"}, &proj))
	s.project = proj.Project.ID
	for i := range 3 + 12 {
		var created struct {
			Key    struct{ ID string } `json:"key"`
			Secret string              `json:"secret"`
		}
		require.Equal(s.t, 200, s.call(ctx, Keys, "POST", "/v1/keys", s.token, map[string]string{
			"type": "ingest", "project_id": s.project, "environment": "prd", "name": fmt.Sprintf("chaos-%d", i),
		}, &created))
		s.ok("keys.create", created.Key.ID)
		if i < 3 {
			s.loadKeys = append(s.loadKeys, created.Secret)
		} else {
			s.victims = append(s.victims, victim{created.Key.ID, created.Secret})
		}
	}
}

// receipt is a revocation's receipt, with when the call returned.
type receipt struct {
	key      string
	at       time.Time
	Live     int  `json:"gateways_live"`
	Applied  int  `json:"gateways_applied"`
	Complete bool `json:"complete"`
	WaitedMS int  `json:"waited_ms"`
}

// revoke revokes v with a receipt (waiting up to 10 s) and tells the presenters when it
// returned.
func (s *suite) revoke(ctx context.Context, v victim, pres *presenters) receipt {
	var out struct {
		Receipt receipt `json:"receipt"`
	}
	code := s.call(ctx, Keys, "POST", "/v1/keys/"+v.id+":revoke", s.token,
		map[string]any{"reason": "chaos", "wait_for_gateways": true, "wait_timeout_ms": 10000}, &out)
	now := time.Now()
	require.Equal(s.t, 200, code)
	s.ok("keys.revoke", v.id)
	pres.revoked(v.secret, now)
	r := out.Receipt
	r.key, r.at = v.id, now
	return r
}

// eventsLeader is the NATS node leading the events stream.
func (s *suite) eventsLeader(ctx context.Context) string {
	nc, err := nats.Connect(s.c.NATSURL)
	require.NoError(s.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(s.t, err)
	st, err := js.Stream(ctx, "LATCHKEY_EVENTS")
	require.NoError(s.t, err)
	info := st.CachedInfo()
	require.Equal(s.t, 3, info.Config.Replicas)
	require.NotNil(s.t, info.Cluster)
	return info.Cluster.Leader
}

var tagRE = regexp.MustCompile(`chaos-[0-9]+-[0-9]+`)

// storedTags reads the ingest stream from its start and returns every payload tag in it,
// trying again (up to 30 s) while JetStream recovers from the faults.
func (s *suite) storedTags(ctx context.Context) map[string]bool {
	nc, err := nats.Connect(s.c.NATSURL)
	require.NoError(s.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(s.t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		tags, err := readTags(ctx, js)
		if err == nil {
			return tags
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("reading the ingest stream: %v", err)
		}
		time.Sleep(time.Second)
	}
}

func readTags(ctx context.Context, js jetstream.JetStream) (map[string]bool, error) {
	st, err := js.Stream(ctx, "LATCHKEY_INGEST")
	if err != nil {
		return nil, err
	}
	if n := st.CachedInfo().Config.Replicas; n != 3 {
		return nil, fmt.Errorf("the ingest stream has %d replicas", n)
	}
	last := st.CachedInfo().State.LastSeq
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	tags := map[string]bool{}
	for seq := uint64(0); seq < last; {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, _ := m.Metadata()
			seq = md.Sequence.Stream
			for _, tag := range tagRE.FindAll(m.Data(), -1) {
				tags[string(tag)] = true
			}
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("stream read stalled at %d of %d", seq, last)
		}
	}
	return tags, nil
}

// checkAudit waits until every management call that succeeded is in the audit log, and
// verifies the account's chain.
func (s *suite) checkAudit(ctx context.Context) {
	want := map[[2]string]bool{}
	for _, c := range s.calls {
		want[c] = true
	}
	var got map[[2]string]bool
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = map[[2]string]bool{}
		cursor := ""
		for {
			var page struct {
				Events []struct {
					Action     string `json:"action"`
					ResourceID string `json:"resource_id"`
					Result     string `json:"result"`
				} `json:"events"`
				NextCursor string `json:"next_cursor"`
			}
			require.Equal(s.t, 200, s.call(ctx, Audit, "GET", "/v1/audit/events?limit=100&cursor="+cursor, s.token, nil, &page))
			for _, e := range page.Events {
				got[[2]string{e.Action, e.ResourceID}] = true
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		lost := 0
		for c := range want {
			if !got[c] {
				lost++
			}
		}
		if lost == 0 {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d management calls that succeeded are not in the audit log", lost, len(want))
		}
		time.Sleep(500 * time.Millisecond)
	}
	var v struct {
		OK     bool  `json:"ok"`
		Events int32 `json:"events_checked"`
	}
	require.Equal(s.t, 200, s.call(ctx, Audit, "GET", "/v1/audit/verify", s.token, nil, &v))
	require.True(s.t, v.OK, "audit chain: %+v", v)
	s.t.Logf("audit: %d management calls that succeeded, all in the log; chain of %d events verifies", len(want), v.Events)
}

// loader sends OTLP/HTTP logs through one gateway with one key, one request at a time,
// each payload tagged uniquely, and retries a payload as an OTLP exporter does (on
// connection errors, 429, 502, 503, 504) until it is acknowledged.
type loader struct {
	id      int
	gateway string
	url     string
	key     string

	acked      []string
	fails      int
	codes      map[int]int // failed tries by status, 0 for no answer
	errTotal   time.Duration
	errLongest time.Duration
}

func (l *loader) run(ctx context.Context) {
	client := &http.Client{Timeout: 5 * time.Second}
	for seq := 0; ctx.Err() == nil; seq++ {
		tag := fmt.Sprintf("chaos-%d-%d", l.id, seq)
		body := otlpLogs(tag)
		var errSince time.Time
		// A payload begun is finished (up to a minute), so every try ends acknowledged
		// or abandoned, never left uncounted.
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			req, _ := http.NewRequest("POST", l.url+"/v1/logs", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+l.key)
			resp, err := client.Do(req)
			code := 0
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				code = resp.StatusCode
			}
			if code/100 == 2 {
				l.acked = append(l.acked, tag)
				if !errSince.IsZero() {
					d := time.Since(errSince)
					l.errTotal += d
					l.errLongest = max(l.errLongest, d)
				}
				break
			}
			l.fails++
			if l.codes == nil {
				l.codes = map[int]int{}
			}
			l.codes[code]++
			if errSince.IsZero() {
				errSince = time.Now()
			}
			if err == nil && code != 429 && code != 502 && code != 503 && code != 504 {
				break // not retryable (OTLP): dropped, not acknowledged
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func otlpLogs(tag string) []byte {
	return []byte(`{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"chaos"}}]},` +
		`"scopeLogs":[{"logRecords":[{"severityText":"INFO","body":{"stringValue":"` + tag + `"}}]}]}]}`)
}

// presenters keep presenting victim keys at the gateways and note every acceptance of a
// key whose revocation had returned before the request was sent.
type presenters struct {
	mu          sync.Mutex
	revokedAt   map[string]time.Time
	total       int
	afterRevoke int
	accepted    []string
	n           atomic.Int64
}

func (p *presenters) revoked(secret string, at time.Time) {
	p.mu.Lock()
	p.revokedAt[secret] = at
	p.mu.Unlock()
}

func (p *presenters) run(ctx context.Context, url, gateway string, v victim) {
	client := &http.Client{Timeout: 5 * time.Second}
	body := otlpLogs(fmt.Sprintf("victim-%d", p.n.Add(1)))
	for ctx.Err() == nil {
		sent := time.Now()
		p.mu.Lock()
		revokedAt, revoked := p.revokedAt[v.secret]
		p.mu.Unlock()
		req, _ := http.NewRequest("POST", url+"/v1/logs", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+v.secret)
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		p.mu.Lock()
		p.total++
		if revoked && sent.After(revokedAt) {
			p.afterRevoke++
			if err == nil && resp.StatusCode/100 == 2 {
				p.accepted = append(p.accepted, fmt.Sprintf("%s at %s, %s after the revocation returned", v.id, gateway, sent.Sub(revokedAt)))
			}
		}
		p.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}
