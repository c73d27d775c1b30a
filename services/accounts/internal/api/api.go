// Package api holds the accounts service's gRPC handlers (served over REST through the
// gateway too) and the authenticator that turns bearer tokens into principals.
package api

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/pagetoken"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
)

// Config is what the handlers need.
type Config struct {
	Store *store.Store
	// Notify wakes the outbox relay after a transaction that wrote events commits.
	Notify func()
	// Authenticator resolves tokens for InternalService.Authenticate.
	Authenticator *Authenticator
	SessionTTL    time.Duration
	StepUpWindow  time.Duration
	TrialPeriod   time.Duration
	// LiveKeys is the keys service's InternalService, asked for live keys before an
	// environment is dropped, and to mint a new project's key (MintProjectKey); nil when no
	// keys service is configured, and then no environment can be dropped.
	LiveKeys keysv1.InternalServiceClient
	// KeyTypes is the keys service's KeysService, asked (ListKeyTypes) whether its profile
	// has a per_project type, whose key every new project gets (project_key.go); nil when
	// no keys service is configured, and then projects get no key.
	KeyTypes keysv1.KeysServiceClient
	// ProjectCap caps project creations and deletions per account and hour (0: no cap);
	// each is taken in the change's own transaction.
	ProjectCap int

	// PageTokenKey keys the MAC of page tokens (pkg/pagetoken); every replica must use the
	// same one (the operator token does).
	PageTokenKey string
}

// Service implements AccountsService, AdminService and InternalService.
type Service struct {
	cfg   Config
	pages *pagetoken.Codec
	// perProject is the keys service's per_project type as last learned.
	perProject perProjectType
}

// New returns the handlers.
func New(cfg Config) *Service {
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	// Made now, so the first login for an unknown e-mail costs no more than later ones.
	_, _ = dummyHash()
	return &Service{cfg: cfg, pages: pagetoken.New(cfg.PageTokenKey, 64)} // positions are project ids
}

type accountsServer struct {
	accountsv1.UnimplementedAccountsServiceServer
	*Service
}

type adminServer struct {
	accountsv1.UnimplementedAdminServiceServer
	*Service
}

type internalServer struct {
	accountsv1.UnimplementedInternalServiceServer
	*Service
}

// Accounts is the public AccountsService.
func (s *Service) Accounts() accountsv1.AccountsServiceServer { return accountsServer{Service: s} }

// Admin is the operator's AdminService.
func (s *Service) Admin() accountsv1.AdminServiceServer { return adminServer{Service: s} }

// Internal is InternalService, for the other Latchkey services.
func (s *Service) Internal() accountsv1.InternalServiceServer { return internalServer{Service: s} }

// now is the service's clock, at Postgres's precision so what is returned is what is stored.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// newEvent starts an event for an account carrying the request id of ctx.
func newEvent(ctx context.Context, accountID string) *eventsv1.Event {
	return events.New(accountID, requestid.From(ctx))
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func accountPB(a store.Account) *accountsv1.Account {
	return &accountsv1.Account{
		Id:          a.ID,
		Name:        a.Name,
		Plan:        a.Plan,
		Status:      a.Status,
		TrialEndsAt: ts(a.TrialEndsAt),
		CreatedAt:   ts(a.CreatedAt),
	}
}

func userPB(u store.User) *accountsv1.User {
	return &accountsv1.User{Id: u.ID, Email: u.Email, AccountId: u.AccountID, CreatedAt: ts(u.CreatedAt)}
}

func projectPB(p store.Project) *accountsv1.Project {
	return &accountsv1.Project{
		Id:                  p.ID,
		AccountId:           p.AccountID,
		Name:                p.Name,
		Environments:        p.Environments,
		AllowedOrigins:      p.AllowedOrigins,
		CreatedAt:           ts(p.CreatedAt),
		UpdatedAt:           ts(p.UpdatedAt),
		EnvironmentsAddedAt: environmentsAddedAt(p),
	}
}

// environmentsAddedAt is the entries of p.EnvironmentsAddedAt that p lists.
func environmentsAddedAt(p store.Project) map[string]*timestamppb.Timestamp {
	out := make(map[string]*timestamppb.Timestamp, len(p.Environments))
	for _, e := range p.Environments {
		if t, ok := p.EnvironmentsAddedAt[e]; ok {
			out[e] = timestamppb.New(t)
		}
	}
	return out
}
