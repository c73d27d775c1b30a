// Package migrations embeds the audit service's schema migrations, applied at start and by
// `audit migrate`. They run as the connecting user (the schema's owner), never as the
// latchkey_audit_writer role the service itself runs as.
package migrations

import "embed"

// FS holds the migrations, applied in name order.
//
//go:embed *.sql
var FS embed.FS
