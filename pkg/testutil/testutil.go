// Package testutil gives tests real dependencies: a fresh Postgres database per test on the
// local server (dropped afterwards), a NATS namespace of their own, and a client of the
// REST API that checks the error envelope (rest.go).
package testutil

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/latchkey/latchkey/pkg/postgres"
)

// AdminURL is the server tests create databases on: LATCHKEY_TEST_DATABASE_URL, or the
// local server as postgres.
func AdminURL() string {
	if u := os.Getenv("LATCHKEY_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NATSURL is the NATS server tests use: NATS_URL, or the local one.
func NATSURL() string {
	if u := os.Getenv("NATS_URL"); u != "" {
		return u
	}
	return nats.DefaultURL
}

// Suffix is a random lower-case hex string for names that must not collide.
func Suffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Namespace returns a NATS subject namespace for this test alone. When the test ends, the
// streams it made on the shared server (named <NAMESPACE>_…) are deleted.
func Namespace(t testing.TB) string {
	t.Helper()
	ns := "t" + Suffix()
	t.Cleanup(func() { deleteStreams(strings.ToUpper(ns) + "_") })
	return ns
}

func deleteStreams(prefix string) {
	nc, err := nats.Connect(NATSURL(), nats.Timeout(2*time.Second))
	if err != nil {
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	var doomed []string
	for n := range names.Name() {
		if strings.HasPrefix(n, prefix) {
			doomed = append(doomed, n)
		}
	}
	for _, n := range doomed {
		_ = js.DeleteStream(ctx, n)
	}
}

// DatabaseURL creates an empty database for this test and returns its URL; the database
// is dropped when the test ends.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("testutil: Postgres at %s is not reachable: %v", AdminURL(), err)
	}
	defer func() { _ = admin.Close(context.Background()) }()
	name := "lk_test_" + Suffix()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testutil: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Logf("testutil: drop %s: %v", name, err)
			return
		}
		defer func() { _ = c.Close(context.Background()) }()
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testutil: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// DB returns a pool on a fresh database with schema migrated to head.
func DB(t testing.TB, schema string, migrations ...fs.FS) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := postgres.Connect(ctx, DatabaseURL(t), schema, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := postgres.Migrate(ctx, pool, schema, migrations...); err != nil {
		t.Fatal(err)
	}
	return pool
}

// Eventually polls cond every few milliseconds until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
