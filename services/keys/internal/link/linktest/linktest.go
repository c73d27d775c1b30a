// Package linktest makes, for tests of the keys service, the two ingest streams the ingest
// gateway keeps (natsx.IngestStreamConfigs), publishes anonymous data as a gateway does, and
// reads streams back.
package linktest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// Connect connects to the test NATS server, closed when the test ends.
func Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(testutil.NATSURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// Streams makes <NS>_INGEST and <NS>_INGEST_ANON (kept for anonTTL, the anonymous type's
// data_ttl) as the gateway does. testutil.Namespace deletes them when the test ends.
func Streams(t testing.TB, js jetstream.JetStream, ns string, anonTTL time.Duration) {
	t.Helper()
	IngestStream(t, js, ns)
	AnonStream(t, js, ns, anonTTL)
}

// IngestStream makes <NS>_INGEST alone, kept for a day.
func IngestStream(t testing.TB, js jetstream.JetStream, ns string) {
	t.Helper()
	create(t, js, config(t, ns, 0))
}

// AnonStream makes <NS>_INGEST_ANON alone, kept for ttl.
func AnonStream(t testing.TB, js jetstream.JetStream, ns string, ttl time.Duration) {
	t.Helper()
	create(t, js, natsx.WithRetention(config(t, ns, 1), ttl))
}

// config is the i-th of ns's ingest streams as natsx.IngestStreamConfigs makes them.
func config(t testing.TB, ns string, i int) jetstream.StreamConfig {
	t.Helper()
	cfgs, err := natsx.IngestStreamConfigs(ns, 24*time.Hour, 24*time.Hour)
	require.NoError(t, err)
	return cfgs[i]
}

func create(t testing.TB, js jetstream.JetStream, cfg jetstream.StreamConfig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := js.CreateOrUpdateStream(ctx, cfg)
	require.NoError(t, err)
}

// Request is one ingest request's part of an anonymous message.
type Request struct {
	RequestID string
	Payload   []byte
}

// PublishAnon publishes to <ns>.anon.<keyID>.<signal> what the gateway would for the
// requests merged into one message: their payloads one after another, and per request a
// Latchkey-Key-Id, Latchkey-Request-Id and Latchkey-Request-Size value. It returns the
// message's stream sequence.
func PublishAnon(t testing.TB, js jetstream.JetStream, ns, keyID, signal string, reqs ...Request) uint64 {
	t.Helper()
	subject, err := natsx.AnonSubject(ns, keyID, signal)
	require.NoError(t, err)
	m := &nats.Msg{Subject: subject, Header: nats.Header{}}
	for _, r := range reqs {
		m.Data = append(m.Data, r.Payload...)
		m.Header.Add("Latchkey-Key-Id", keyID)
		m.Header.Add("Latchkey-Request-Id", r.RequestID)
		m.Header.Add("Latchkey-Request-Size", strconv.Itoa(len(r.Payload)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	require.NoError(t, err)
	return ack.Sequence
}

// Stored is a message read back from a stream.
type Stored struct {
	Subject string
	Header  nats.Header
	Data    []byte
}

// Messages returns every message of stream on subjects (a filter), in order.
func Messages(t testing.TB, js jetstream.JetStream, stream, subjects string) []Stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subjects))
	require.NoError(t, err)
	var want uint64
	for _, n := range info.State.Subjects {
		want += n
	}
	var out []Stored
	if want == 0 {
		return out
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subjects}})
	require.NoError(t, err)
	for uint64(len(out)) < want {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		require.NoError(t, err)
		out = append(out, Stored{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
	}
	return out
}

// LimitIngest makes <NS>_INGEST refuse every message beyond maxMsgs (MaxMsgs with
// DiscardNew), as a full stream does; -1 lifts the limit. denyDelete makes it refuse
// deletions as well. The rest of its configuration is kept.
func LimitIngest(t testing.TB, js jetstream.JetStream, ns string, maxMsgs int64, denyDelete bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, natsx.IngestStream(ns))
	require.NoError(t, err)
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs, cfg.DenyDelete = maxMsgs, denyDelete
	if maxMsgs >= 0 {
		cfg.Discard = jetstream.DiscardNew
	}
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
}
