// Package migrations embeds the keys service's schema migrations, applied at start and by
// `keys migrate`.
package migrations

import "embed"

// FS holds the migrations, applied in name order.
//
//go:embed *.sql
var FS embed.FS
