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
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/periodic"
)

// Directory answers account and project questions.
type Directory struct {
	client        accountsv1.InternalServiceClient
	operatorToken string
	ttl           time.Duration

	mu       sync.Mutex
	accounts map[string]entry[*accountsv1.Account]
	projects map[string]entry[*accountsv1.Project] // by account_id + "/" + project_id
}

type entry[T any] struct {
	v  T
	at time.Time
}

// New returns a directory calling accounts with the operator token.
func New(client accountsv1.InternalServiceClient, operatorToken string, ttl time.Duration) *Directory {
	return &Directory{
		client: client, operatorToken: operatorToken, ttl: ttl,
		accounts: map[string]entry[*accountsv1.Account]{},
		projects: map[string]entry[*accountsv1.Project]{},
	}
}

// ResolveSession implements auth.SessionResolver: sessions are accounts' to resolve (and
// never cached here, so a logout or suspension takes effect at once).
func (d *Directory) ResolveSession(ctx context.Context, token string) (*auth.Session, error) {
	return auth.RemoteSessions{Client: d.client, Operator: auth.OperatorToken(d.operatorToken)}.ResolveSession(ctx, token)
}

// Account returns an account; errors from accounts (not_found, unavailable) pass through.
// fresh skips the cache: gateways cache what VerifyKey says, and must not be handed an
// answer this cache has not yet dropped for an event the gateway has already applied.
func (d *Directory) Account(ctx context.Context, id string, fresh bool) (*accountsv1.Account, error) {
	if a, ok := lookup(d, d.accounts, id); ok && !fresh {
		return a, nil
	}
	resp, err := d.client.LookupAccount(auth.OutgoingBearer(ctx, d.operatorToken), &accountsv1.LookupAccountRequest{AccountId: id})
	if err != nil {
		return nil, err
	}
	store(d, d.accounts, id, resp.GetAccount())
	return resp.GetAccount(), nil
}

// Project returns one of the account's projects; fresh as for Account.
func (d *Directory) Project(ctx context.Context, accountID, projectID string, fresh bool) (*accountsv1.Project, error) {
	k := accountID + "/" + projectID
	if p, ok := lookup(d, d.projects, k); ok && !fresh {
		return p, nil
	}
	p, _, err := d.lookupProject(ctx, accountID, projectID)
	return p, err
}

// ProjectAndAccount returns a project and its account in one call to accounts; fresh as
// for Account.
func (d *Directory) ProjectAndAccount(ctx context.Context, accountID, projectID string, fresh bool) (*accountsv1.Project, *accountsv1.Account, error) {
	if !fresh {
		p, okP := lookup(d, d.projects, accountID+"/"+projectID)
		a, okA := lookup(d, d.accounts, accountID)
		if okP && okA {
			return p, a, nil
		}
	}
	return d.lookupProject(ctx, accountID, projectID)
}

func (d *Directory) lookupProject(ctx context.Context, accountID, projectID string) (*accountsv1.Project, *accountsv1.Account, error) {
	resp, err := d.client.LookupProject(auth.OutgoingBearer(ctx, d.operatorToken),
		&accountsv1.LookupProjectRequest{AccountId: accountID, ProjectId: projectID})
	if err != nil {
		return nil, nil, err
	}
	store(d, d.projects, accountID+"/"+projectID, resp.GetProject())
	store(d, d.accounts, accountID, resp.GetAccount())
	return resp.GetProject(), resp.GetAccount(), nil
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
