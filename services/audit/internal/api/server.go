// Package api holds the audit service's gRPC handlers, one file per RPC.
package api

import (
	"time"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// ReadCapability is what an account key needs to read its account's audit log; users
// hold every capability.
const ReadCapability = "audit:read"

// Server implements auditv1.AuditServiceServer.
type Server struct {
	auditv1.UnimplementedAuditServiceServer

	store   *store.Store
	cursors *Cursors
	signer  *chain.Signer
	now     func() time.Time
}

// Deps are what the handlers need.
type Deps struct {
	Store *store.Store
	// CursorSecret keys the MAC of listing cursors; every replica must use the same one
	// (the operator token does).
	CursorSecret string
	// Signer checks the signatures of the chains' checkpoints; the store's.
	Signer *chain.Signer
}

// New returns the handlers.
func New(d Deps) *Server {
	return &Server{store: d.Store, cursors: NewCursors(d.CursorSecret), signer: d.Signer, now: time.Now}
}
