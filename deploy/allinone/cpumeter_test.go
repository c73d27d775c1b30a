package allinone

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// cpuMeter measures the CPU time a benchmark spends, in this process (the whole suite runs
// in it) and in the Postgres backends serving the suite's database: a figure that holds on
// a machine shared with other work, where a rate in calls/s says as much about the
// neighbours as about the code. Postgres's share is read from /proc, so it is counted only
// when Postgres runs on this machine, as the harness's does.
type cpuMeter struct {
	t     testing.TB
	dbURL string
	proc  time.Duration
	pg    map[int]time.Duration
}

func startCPUMeter(t testing.TB, dbURL string) *cpuMeter {
	m := &cpuMeter{t: t, dbURL: dbURL}
	m.proc, m.pg = processCPU(), m.backendsCPU()
	return m
}

// report adds the CPU per operation since start, µs of this process and of Postgres, as
// metrics named after unit ("call", "key").
func (m *cpuMeter) report(b *testing.B, ops int64, unit string) {
	if ops == 0 {
		return
	}
	proc := processCPU() - m.proc
	var pg time.Duration
	for pid, d := range m.backendsCPU() {
		pg += d - m.pg[pid] // a backend started meanwhile counts whole
	}
	b.ReportMetric(float64(proc.Microseconds())/float64(ops), "proc-cpu-µs/"+unit)
	b.ReportMetric(float64(pg.Microseconds())/float64(ops), "pg-cpu-µs/"+unit)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// backendsCPU is the CPU time of each backend connected to the suite's database, by pid.
func (m *cpuMeter) backendsCPU() map[int]time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, m.dbURL)
	if err != nil {
		m.t.Fatalf("cpu meter: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	if err != nil {
		m.t.Fatalf("cpu meter: %v", err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		m.t.Fatalf("cpu meter: %v", err)
	}
	out := make(map[int]time.Duration, len(pids))
	for _, pid := range pids {
		out[int(pid)] = procCPU(int(pid))
	}
	return out
}

// procCPU reads utime + stime of a process from /proc/<pid>/stat (0 when it cannot).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command may hold spaces; fields resume after its closing parenthesis.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ, 100 on every Linux Go runs on
	return time.Duration(ut+st) * time.Second / hz
}
