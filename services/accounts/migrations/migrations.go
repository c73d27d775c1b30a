// Package migrations holds the accounts schema's migrations, applied by postgres.Migrate.
package migrations

import "embed"

// FS holds the migration files, applied in name order.
//
//go:embed *.sql
var FS embed.FS
