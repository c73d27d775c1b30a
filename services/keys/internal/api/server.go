// Package api holds the keys service's gRPC handlers, one file per RPC.
package api

import (
	"time"

	"github.com/latchkey/latchkey/pkg/postgres"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/batch"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/pagetoken"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/services/keys/internal/directory"
	"github.com/latchkey/latchkey/services/keys/internal/link"
	"github.com/latchkey/latchkey/services/keys/internal/receipts"
	"github.com/latchkey/latchkey/services/keys/internal/store"
	"github.com/latchkey/latchkey/services/keys/internal/usage"
)

// Server implements keysv1.KeysServiceServer.
type Server struct {
	keysv1.UnimplementedKeysServiceServer

	store *store.Store
	// byHash finds keys by keyed hash for verification: the lookups of concurrent calls
	// are one query (verifyLookups).
	byHash   *batch.Group[string, *store.Key]
	types    *keyformat.Registry
	hasher   *keyformat.Hasher
	dir      *directory.Directory
	usage    *usage.Tracker
	receipts *receipts.Tracker
	caps     Caps
	// anonymous is the per-IP bucket of CreateAnonymousKey.
	anonymous *limits.Bucket
	notify    func() // wakes the outbox relay after a commit
	operator  string
	pages     *pagetoken.Codec
	now       func() time.Time

	// linker links a claimed anonymous key's data to its account (ClaimKey).
	linker *link.Linker
	// sweeps runs claims' sweeps after their answers (ClaimKey, Sweeps).
	sweeps *sweeper

	// serverCaps are the hourly caps of the servers calls.
	serverCaps ServerCaps
}

// Caps are per-account hourly caps, taken in the transaction of the change they count;
// a PerHour of 0 is no cap.
type Caps struct {
	// Rotations of any key.
	Rotations quota.Cap
	// AccountKeys created or rotated.
	AccountKeys quota.Cap
}

// NewCaps names the keys service's caps: rotations and account keys per account and hour.
func NewCaps(rotationsPerHour, accountKeysPerHour int) Caps {
	return Caps{
		Rotations:   quota.Cap{Action: "rotate keys", PerHour: rotationsPerHour},
		AccountKeys: quota.Cap{Action: "create or rotate account keys", PerHour: accountKeysPerHour},
	}
}

// ServerCaps are the per-account hourly caps of the servers calls (ServersService), taken
// in the transaction of the change they count; a PerHour of 0 is no cap.
type ServerCaps struct {
	// Creates of servers (CreateServer).
	Creates quota.Cap
	// Deletes of servers (DeleteServer).
	Deletes quota.Cap
	// Rotations of servers' keys (RotateServerKey; POST /v1/keys/{id}:rotate of a server's
	// key counts against Caps.Rotations instead).
	Rotations quota.Cap
}

// NewServerCaps names the servers calls' caps: creates, deletes and key rotations per
// account and hour (LATCHKEY_CAP_SERVER_CREATES_PER_HOUR, …_DELETES_…, …_ROTATIONS_…).
func NewServerCaps(createsPerHour, deletesPerHour, rotationsPerHour int) ServerCaps {
	return ServerCaps{
		Creates:   quota.Cap{Action: "create servers", PerHour: createsPerHour},
		Deletes:   quota.Cap{Action: "delete servers", PerHour: deletesPerHour},
		Rotations: quota.Cap{Action: "rotate server keys", PerHour: rotationsPerHour},
	}
}

// Deps are what the handlers need.
type Deps struct {
	Store    *store.Store
	Types    *keyformat.Registry
	Hasher   *keyformat.Hasher
	Dir      *directory.Directory
	Usage    *usage.Tracker
	Receipts *receipts.Tracker
	Caps     Caps
	// Anonymous is the per-IP bucket minting anonymous keys takes from
	// (LATCHKEY_LIMIT_ANONYMOUS); nil for none.
	Anonymous *limits.Bucket
	Notify    func()
	Operator  string

	// Linker moves a claimed anonymous key's data to the account (ClaimKey): a
	// link.Linker on the service's JetStream and namespace. The service must run
	// Server.Sweeps as a worker, so that shutdown waits for claims' sweeps.
	Linker *link.Linker

	// ServerCaps are the servers calls' hourly caps (NewServerCaps); none when zero.
	ServerCaps ServerCaps
}

// New returns the handlers.
func New(d Deps) *Server {
	if d.Anonymous == nil {
		d.Anonymous = limits.NewBucket(ratelimit.Limit{})
	}
	return &Server{
		store: d.Store, byHash: verifyLookups(d.Store), types: d.Types, hasher: d.Hasher, dir: d.Dir, usage: d.Usage, receipts: d.Receipts,
		caps: d.Caps, anonymous: d.Anonymous, linker: d.Linker, sweeps: newSweeper(), serverCaps: d.ServerCaps,
		notify: d.Notify, operator: d.Operator, now: postgres.Now,
		// Page tokens are keyed by the operator token, which every replica shares.
		pages: pagetoken.New(d.Operator, 64), // positions are key ids
	}
}
