package allinone

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestColdStartOfManyGateways: ten gateways start with empty caches and at once each gets
// a request for each of 1,000 hot keys, so every first request is a miss: 10,000 VerifyKey
// calls on the keys service within a moment, the storm a fleet's restart makes. Every
// request must be accepted: no 5xx, and no 429 or 503 with Retry-After either (docs/scale.md,
// "Cold start"). The keys service answers concurrent calls with shared Postgres queries and
// accounts calls (services/keys/internal/batch).
func TestColdStartOfManyGateways(t *testing.T) {
	const gateways, hotKeys = 10, 1000
	profile := unlimitedProfile(t) // the type's per-key rate limit is not what is tested
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) { k.KeyProfile = profile }))
	token, _ := s.signUp("cold")
	projects := []string{s.Project(token), s.Project(token), s.Project(token), s.Project(token)}

	secrets := make([]string, hotKeys)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				_, secrets[i] = s.IngestKey(token, projects[i%len(projects)])
			}
		})
	}
	for i := range secrets {
		work <- i
	}
	close(work)
	wg.Wait()

	urls := make([]string, gateways)
	for i := range urls {
		urls[i], _ = s.extraGateway(fmt.Sprintf("cold-%d", i))
	}

	// 100 connections per gateway, which its 1,000 requests share (every one still a
	// miss): 10,000 connections at once would exhaust this process's file descriptors,
	// which the test's clients and the gateways share.
	const conns = 100
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		byStatus = map[int]int{}
		failures []string
	)
	start := make(chan struct{})
	for _, url := range urls {
		for _, secret := range secrets {
			wg.Go(func() {
				<-start
				req, err := http.NewRequest("POST", url+"/ingest/logs", strings.NewReader(`{"service": "cold", "logs": [{"message": "first"}]}`))
				if err != nil {
					panic(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+secret)
				resp, err := client.Do(req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					byStatus[0]++
					if len(failures) < 5 {
						failures = append(failures, err.Error())
					}
					return
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				byStatus[resp.StatusCode]++
				if resp.StatusCode != http.StatusOK && len(failures) < 5 {
					failures = append(failures, fmt.Sprintf("%d %s (Retry-After %q)", resp.StatusCode, body, resp.Header.Get("Retry-After")))
				}
			})
		}
	}
	began := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d requests, each its gateway's first for its key, in %v: %v", gateways*hotKeys, time.Since(began).Round(time.Millisecond), byStatus)
	require.Equal(t, map[int]int{http.StatusOK: gateways * hotKeys}, byStatus, "every request accepted; first failures: %v", failures)
}
