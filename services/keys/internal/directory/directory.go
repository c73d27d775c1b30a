// Package directory is the keys service's view of accounts and projects, read from the
// accounts service over gRPC and cached briefly. Accounts events (suspension, plan and
// project changes) drop entries as they arrive; the TTL bounds staleness if events are lost.
package directory

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/batch"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/periodic"
)

// Directory answers account and project questions.
type Directory struct {
	client        accountsv1.InternalServiceClient
	operatorToken string
	ttl           time.Duration
	// reads asks accounts for what lookups arriving together need, in one LookupMany call.
	reads *batch.Group[ref, found]

	mu       sync.Mutex
	accounts map[string]entry[*accountsv1.Account]
	projects map[string]entry[*accountsv1.Project] // by account_id + "/" + project_id
}

// ref is one read: a project and its account, or an account alone (project "").
type ref struct{ account, project string }

// found is what a read found: the project (nil for an account alone) and the account.
type found struct {
	project *accountsv1.Project
	account *accountsv1.Account
}

type entry[T any] struct {
	v  T
	at time.Time
}

// Batches of reads. LookupMany takes at most 1000 of each kind; batchSlots is how many
// calls to accounts may be under way at once: one, as for the keys' own lookups (api,
// verifySlots), which makes the biggest batches.
const (
	maxBatch     = 500
	batchSlots   = 1
	batchTimeout = 5 * time.Second
)

var (
	errAccountNotFound = apierr.New(apierr.NotFound, "account not found")
	errProjectNotFound = apierr.New(apierr.NotFound, "project not found")
)

// New returns a directory calling accounts with the operator token.
func New(client accountsv1.InternalServiceClient, operatorToken string, ttl time.Duration) *Directory {
	d := &Directory{
		client: client, operatorToken: operatorToken, ttl: ttl,
		accounts: map[string]entry[*accountsv1.Account]{},
		projects: map[string]entry[*accountsv1.Project]{},
	}
	d.reads = batch.New(d.lookupMany, batchSlots, maxBatch, batchTimeout)
	return d
}

// ResolveSession implements auth.SessionResolver: sessions are accounts' to resolve (and
// never cached here, so a logout or suspension takes effect at once).
func (d *Directory) ResolveSession(ctx context.Context, token string) (*auth.Session, error) {
	return auth.RemoteSessions{Client: d.client, Operator: auth.OperatorToken(d.operatorToken)}.ResolveSession(ctx, token)
}

// Account returns an account: not_found when accounts has none; accounts' errors
// (unavailable) pass through. fresh skips the cache: gateways cache what VerifyKey says,
// and must not be handed an answer this cache has not yet dropped for an event the gateway
// has already applied. A fresh read is never older than the call (batch: concurrent calls
// share one read only when it began after each of them).
func (d *Directory) Account(ctx context.Context, id string, fresh bool) (*accountsv1.Account, error) {
	if a, ok := lookup(d, d.accounts, id); ok && !fresh {
		return a, nil
	}
	f, ok, err := d.reads.Get(ctx, ref{account: id})
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, errAccountNotFound
	}
	return f.account, nil
}

// Project returns one of the account's projects: not_found when accounts has none of that
// account; fresh as for Account.
func (d *Directory) Project(ctx context.Context, accountID, projectID string, fresh bool) (*accountsv1.Project, error) {
	if p, ok := lookup(d, d.projects, accountID+"/"+projectID); ok && !fresh {
		return p, nil
	}
	p, _, err := d.read(ctx, accountID, projectID)
	return p, err
}

// ProjectAndAccount returns a project and its account, read together; fresh as for
// Account.
func (d *Directory) ProjectAndAccount(ctx context.Context, accountID, projectID string, fresh bool) (*accountsv1.Project, *accountsv1.Account, error) {
	if !fresh {
		p, okP := lookup(d, d.projects, accountID+"/"+projectID)
		a, okA := lookup(d, d.accounts, accountID)
		if okP && okA {
			return p, a, nil
		}
	}
	return d.read(ctx, accountID, projectID)
}

func (d *Directory) read(ctx context.Context, accountID, projectID string) (*accountsv1.Project, *accountsv1.Account, error) {
	f, ok, err := d.reads.Get(ctx, ref{account: accountID, project: projectID})
	switch {
	case err != nil:
		return nil, nil, err
	case !ok:
		return nil, nil, errProjectNotFound
	}
	return f.project, f.account, nil
}

// lookupMany is the batch's fetch: one LookupMany call for every read, whose answers are
// cached as they come.
func (d *Directory) lookupMany(ctx context.Context, refs []ref) (map[ref]found, error) {
	req := &accountsv1.LookupManyRequest{}
	for _, r := range refs {
		if r.project == "" {
			req.AccountIds = append(req.AccountIds, r.account)
		} else {
			req.Projects = append(req.Projects, &accountsv1.LookupProjectRequest{AccountId: r.account, ProjectId: r.project})
		}
	}
	resp, err := d.client.LookupMany(auth.OutgoingBearer(ctx, d.operatorToken), req)
	if err != nil {
		return nil, err
	}
	accounts := make(map[string]*accountsv1.Account, len(resp.GetAccounts()))
	projects := make(map[ref]*accountsv1.Project, len(resp.GetProjects()))
	for _, a := range resp.GetAccounts() {
		accounts[a.GetId()] = a
		store(d, d.accounts, a.GetId(), a)
	}
	for _, p := range resp.GetProjects() {
		projects[ref{account: p.GetAccountId(), project: p.GetId()}] = p
		store(d, d.projects, p.GetAccountId()+"/"+p.GetId(), p)
	}
	out := make(map[ref]found, len(refs))
	for _, r := range refs {
		a, okA := accounts[r.account]
		p, okP := projects[r]
		if okA && (r.project == "" || okP) {
			out[r] = found{project: p, account: a}
		}
	}
	return out, nil
}

func lookup[T any](d *Directory, m map[string]entry[T], k string) (T, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := m[k]
	if !ok || time.Since(e.at) > d.ttl {
		var zero T
		return zero, false
	}
	return e.v, true
}

func store[T any](d *Directory, m map[string]entry[T], k string, v T) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m[k] = entry[T]{v: v, at: time.Now()}
}

// Subscribe drops cached entries as accounts events arrive. Core NATS suffices: a missed
// event only costs staleness up to the TTL.
func (d *Directory) Subscribe(nc *nats.Conn, ns string) (*nats.Subscription, error) {
	return nc.Subscribe(natsx.EventSubject(ns, ">"), func(m *nats.Msg) {
		var ev eventsv1.Event
		if proto.Unmarshal(m.Data, &ev) != nil {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		switch p := ev.GetPayload().(type) {
		case *eventsv1.Event_AccountSuspended, *eventsv1.Event_AccountReinstated, *eventsv1.Event_AccountPlanChanged:
			delete(d.accounts, ev.GetAccountId())
		case *eventsv1.Event_ProjectUpdated:
			delete(d.projects, ev.GetAccountId()+"/"+p.ProjectUpdated.GetProjectId())
		case *eventsv1.Event_ProjectDeleted:
			delete(d.projects, ev.GetAccountId()+"/"+p.ProjectDeleted.GetProjectId())
		}
	})
}

// Flush forgets everything, after a NATS reconnect: events may have been missed.
func (d *Directory) Flush() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.accounts) // in place: readers hold the maps, not the fields
	clear(d.projects)
}

// Prune drops expired entries every TTL until ctx ends, so memory follows the accounts and
// projects in use.
func (d *Directory) Prune(ctx context.Context) error {
	return periodic.Every(ctx, d.ttl, func(context.Context) {
		d.mu.Lock()
		defer d.mu.Unlock()
		prune(d.accounts, d.ttl)
		prune(d.projects, d.ttl)
	})
}

func prune[T any](m map[string]entry[T], ttl time.Duration) {
	for k, e := range m {
		if time.Since(e.at) > ttl {
			delete(m, k)
		}
	}
}
