package allinone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// localServer is the machine's own Postgres, tried when DATABASE_URL is unset.
const localServer = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=3"

// resolvePostgres finds a Postgres: DATABASE_URL, else the local server (with a "latchkey"
// database made if missing), else a throwaway cluster from the machine's Postgres binaries.
// stop tears down whatever it started.
func resolvePostgres(ctx context.Context, dbURL string, log *zap.Logger) (string, func(), error) {
	if dbURL != "" {
		return dbURL, func() {}, nil
	}
	if u, err := ensureDatabase(ctx, localServer, "latchkey"); err == nil {
		log.Info("postgres: using the local server", zap.String("database", "latchkey"))
		return u, func() {}, nil
	} else {
		log.Info("postgres: no server on 127.0.0.1:5432; starting a throwaway cluster", zap.Error(err))
	}
	u, stop, err := throwawayCluster(ctx, log)
	if err != nil {
		return "", nil, fmt.Errorf("no Postgres: set DATABASE_URL, start a server on 127.0.0.1:5432, "+
			"or install PostgreSQL (apt-get install postgresql) so a throwaway cluster can be made: %w", err)
	}
	return u, stop, nil
}

// ensureDatabase connects to admin and creates db if it does not exist; it returns db's URL.
func ensureDatabase(ctx context.Context, admin, db string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, admin)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var exists bool
	if err := conn.QueryRow(cctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return "", err
	}
	if !exists {
		if _, err := conn.Exec(cctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return "", err
		}
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + db
	q := u.Query()
	q.Del("connect_timeout")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// throwawayCluster runs initdb and pg_ctl from /usr/lib/postgresql/<version>/bin in a temp
// directory, on a free port, trust auth; as root it runs them as the postgres user, since
// Postgres refuses to run as root.
func throwawayCluster(ctx context.Context, log *zap.Logger) (string, func(), error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		return "", nil, errors.New("initdb not found under /usr/lib/postgresql/*/bin")
	}
	sort.Strings(bins)
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "latchkey-pg-")
	if err != nil {
		return "", nil, err
	}
	var asUser []string
	if os.Geteuid() == 0 {
		pgUser, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, errors.New("running as root needs a postgres user to run the cluster as")
		}
		uid, _ := strconv.Atoi(pgUser.Uid)
		gid, _ := strconv.Atoi(pgUser.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", nil, err
		}
		asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(args ...string) error {
		full := append(append([]string{}, asUser...), args...)
		out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput() //nolint:gosec // our own arguments: Postgres binaries and a temp dir
		if err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(args[0]), err, out)
		}
		return nil
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	data := filepath.Join(dir, "data")
	if err := run(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"); err != nil {
		return "", nil, err
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir)
	if err := run(filepath.Join(bin, "pg_ctl"), "-D", data, "-o", opts, "-l", filepath.Join(dir, "log"), "-w", "start"); err != nil {
		return "", nil, err
	}
	stop := func() {
		_ = run(filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")
		_ = os.RemoveAll(dir)
	}
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	u, err := ensureDatabase(ctx, admin, "latchkey")
	if err != nil {
		stop()
		return "", nil, err
	}
	log.Info("postgres: throwaway cluster up", zap.Int("port", port), zap.String("dir", dir))
	return u, stop, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
