// Package auditlog turns every audited call of a service into one audit event, allowed or
// refused, and hands it to JetStream through the service's transactional outbox: once the
// row is written the relay retries until JetStream has it, and the audit service consumes
// it durably, so an outage anywhere downstream delays events and loses none.
package auditlog

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/callmeta"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/server"
)

// Action says how one RPC is audited. Paths are dotted proto field names ("key.id"),
// looked up in the response first, then the request.
type Action struct {
	// Name is what was attempted, e.g. "keys.create".
	Name string
	// Resource is the kind of thing acted on, e.g. "key".
	Resource string
	// ResourceID is where the resource's id is.
	ResourceID []string
	// Account is where the account id is when the caller has none (sign-up, operator calls).
	Account []string
	// Details names extra fields to record, e.g. {"new_key_id": "key.id"} for a rotation.
	Details map[string]string
}

// Recorder writes the audit events of one service.
type Recorder struct {
	pool    *pgxpool.Pool
	ns      string
	notify  func()
	log     *zap.Logger
	actions map[string]Action
}

// New returns a recorder for the RPCs in actions (by full method name); other calls are
// not audited (internal lookups, verification, health).
func New(pool *pgxpool.Pool, ns string, notify func(), log *zap.Logger, actions map[string]Action) *Recorder {
	return &Recorder{pool: pool, ns: ns, notify: notify, log: log, actions: actions}
}

// OnCall is a server.GRPCConfig.OnCall hook.
func (r *Recorder) OnCall(ctx context.Context, c server.Call) {
	a, ok := r.actions[c.Method]
	if !ok {
		return
	}
	ev := Event(ctx, a, c)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := outbox.AddMessage(wctx, r.pool, ev.GetId(), natsx.AuditSubject(r.ns, ev.GetAccountId()), ev); err != nil {
		r.log.Error("audit event not recorded", zap.String("action", a.Name), zap.String("request_id", ev.GetRequestId()), zap.Error(err))
		return
	}
	r.notify()
}

// Event builds the audit event of a finished call.
func Event(ctx context.Context, a Action, c server.Call) *auditv1.AuditEvent {
	ev := &auditv1.AuditEvent{
		Id:           ids.New(ids.Audit),
		Time:         timestamppb.Now(),
		Actor:        &auditv1.Actor{Type: "anonymous"},
		Action:       a.Name,
		ResourceType: a.Resource,
		ResourceId:   first(a.ResourceID, c),
		Result:       c.Code,
		RequestId:    requestid.From(ctx),
		ClientIp:     callmeta.ClientIP(ctx),
		UserAgent:    callmeta.UserAgent(ctx),
	}
	if p := c.Principal; p != nil {
		ev.AccountId = p.AccountID
		ev.Actor = &auditv1.Actor{Type: string(p.Kind), Id: actorID(p)}
		ev.KeyId = p.KeyID
	}
	if ev.GetAccountId() == "" {
		ev.AccountId = first(a.Account, c)
	}
	details := map[string]string{}
	for name, path := range a.Details {
		if v := first([]string{path}, c); v != "" {
			details[name] = v
		}
	}
	if c.Code != "ok" && c.Message != "" {
		details["message"] = truncate(c.Message, 300)
	}
	if len(details) > 0 {
		ev.Details = details
	}
	return ev
}

func actorID(p *auth.Principal) string {
	if p.Kind == auth.KindOperator {
		return ""
	}
	return p.Actor()
}

// first returns the first non-empty value of paths, in the response then the request.
func first(paths []string, c server.Call) string {
	for _, msg := range []any{c.Response, c.Request} {
		m, ok := msg.(proto.Message)
		if !ok || m == nil {
			continue
		}
		for _, path := range paths {
			if v := field(m.ProtoReflect(), path); v != "" {
				return v
			}
		}
	}
	return ""
}

// field reads a string field at a dotted path; "" when absent.
func field(m protoreflect.Message, path string) string {
	if !m.IsValid() {
		return ""
	}
	parts := strings.Split(path, ".")
	for i, name := range parts {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return ""
		}
		if i == len(parts)-1 {
			if fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
				return ""
			}
			return m.Get(fd).String()
		}
		if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() || !m.Has(fd) {
			return ""
		}
		m = m.Get(fd).Message()
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
