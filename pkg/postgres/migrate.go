package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrate applies the *.sql files of each source in turn (each sorted by name, e.g.
// 0001_init.sql) that schema has not seen yet, each in its own transaction, under an
// advisory lock so that replicas starting together apply each once. Applied versions (file
// names without .sql, unique across sources) are kept in <schema>.schema_migrations.
// Shared tables come as their own source (outbox.Migrations). It returns the names applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string, sources ...fs.FS) ([]string, error) {
	type file struct {
		src  fs.FS
		name string
	}
	var files []file
	seen := map[string]bool{}
	for _, src := range sources {
		names, err := fs.Glob(src, "*.sql")
		if err != nil {
			return nil, err
		}
		sort.Strings(names)
		for _, n := range names {
			if seen[n] {
				return nil, fmt.Errorf("migrate %s: two migrations named %s", schema, n)
			}
			seen[n] = true
			files = append(files, file{src, n})
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	ident := pgx.Identifier{schema}.Sanitize()
	lockKey := "latchkey.migrate." + schema
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", lockKey); err != nil {
		return nil, fmt.Errorf("migrate %s: lock: %w", schema, err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1))", lockKey)
	}()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+ident+
		"; CREATE TABLE IF NOT EXISTS "+ident+".schema_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"); err != nil {
		return nil, fmt.Errorf("migrate %s: %w", schema, err)
	}
	var applied []string
	for _, f := range files {
		name := f.name
		version := strings.TrimSuffix(name, ".sql")
		var seen bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident+".schema_migrations WHERE version = $1)", version).Scan(&seen); err != nil {
			return applied, fmt.Errorf("migrate %s: %w", schema, err)
		}
		if seen {
			continue
		}
		sql, err := fs.ReadFile(f.src, name)
		if err != nil {
			return applied, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+ident); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, string(sql)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO "+ident+".schema_migrations (version) VALUES ($1)", version)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate %s: %s: %w", schema, name, err)
		}
		applied = append(applied, version)
	}
	return applied, nil
}
