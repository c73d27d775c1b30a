// Package auditlog turns every audited call of a service into one audit event, allowed or
// refused, and hands it to JetStream through the service's transactional outbox: once the
// row is written the relay retries until JetStream has it, and the audit service consumes
// it durably, so an outage anywhere downstream delays events and loses none.
//
// The event of a change is written in the change's own transaction: Interceptor puts a
// handle for the call in its context, and the one transaction helper of each service calls
// Record with its transaction before it commits, so the change and its event commit
// together or not at all. After the call, the interceptor writes the event itself only
// when nothing was recorded in a transaction (reads, refusals, idempotent replays) or
// when the call failed (then as a second event: a change that committed keeps its own).
//
// Who an event is filed under is decided in one place (Event): the authenticated caller's
// account; else an account the call's successful response names (sign-up, log-in); else,
// for an operator call that succeeded, the account the request names; else no account
// ("_"). An unauthenticated or refused call never files events under an account id it
// merely names. Every text of an event that may quote input is passed through
// keyformat.Redact, so a secret pasted where an id belongs is not kept.
package auditlog

import (
	"context"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/callmeta"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
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
	// Account is where the account id is when the caller has none (sign-up, operator
	// calls). It is read from a successful call's response, and from the request only for
	// an operator call that succeeded: see Event.
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
	// intercepting is set once Interceptor is installed: from then on calls that reach the
	// gRPC chain are recorded there, and OnCall records only what the REST bridge refused
	// before any handler ran.
	intercepting atomic.Bool
}

// New returns a recorder for the RPCs in actions (by full method name); other calls are
// not audited (internal lookups, verification, health). Install both Interceptor (first of
// server.GRPCConfig.Interceptors) and OnCall (server.GRPCConfig.OnCall).
func New(pool *pgxpool.Pool, ns string, notify func(), log *zap.Logger, actions map[string]Action) *Recorder {
	return &Recorder{pool: pool, ns: ns, notify: notify, log: log, actions: actions}
}

// Facts are what a change knows about itself before it commits, for Record: the id of the
// resource it made or changed, the account it made (sign-up) and extra details. Empty
// fields fall back to the call's Action paths on the request.
type Facts struct {
	ResourceID string
	AccountID  string
	Details    map[string]string
}

type handleKey struct{}

// handle is one audited call in progress.
type handle struct {
	r         *Recorder
	action    Action
	method    string
	request   any
	principal *auth.Principal
	recorded  atomic.Bool
}

// Interceptor returns the unary interceptor that audits calls: it gives each audited call a
// handle for Record and, when the call ends, writes its event unless a transaction already
// did (see the package comment). It must run after authentication.
func (r *Recorder) Interceptor() grpc.UnaryServerInterceptor {
	r.intercepting.Store(true)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
		a, ok := r.actions[info.FullMethod]
		if !ok {
			return next(ctx, req)
		}
		h := &handle{r: r, action: a, method: info.FullMethod, request: req, principal: auth.From(ctx)}
		finished := false
		defer func() {
			if !finished { // a panic: recorded as the client will see it, then passed on
				r.after(ctx, h, nil, apierr.New(apierr.Internal, "internal error"))
			}
		}()
		resp, err = next(context.WithValue(ctx, handleKey{}, h), req)
		finished = true
		r.after(ctx, h, resp, err)
		return resp, err
	}
}

// after writes the event of a finished call unless a committed transaction holds it.
func (r *Recorder) after(ctx context.Context, h *handle, resp any, err error) {
	if err == nil && h.recorded.Load() {
		r.notify()
		return
	}
	c := server.Call{Method: h.method, Principal: h.principal, Request: h.request, Code: "ok"}
	if err != nil {
		e := apierr.FromError(err)
		c.Code, c.Message = string(e.Code), e.Message
	} else {
		c.Response = resp
	}
	r.write(ctx, h.action, c)
}

// Record writes the audit event of the call in ctx with tx, the transaction of the change
// the call makes, so that both commit or neither does. The event says "ok": if the
// transaction rolls back, the call fails and its failure is recorded instead. Call it
// once per transaction, last, before commit; retrying a transaction may call it again.
// Outside an audited call it does nothing.
func Record(ctx context.Context, tx outbox.Execer, f Facts) error {
	h, ok := ctx.Value(handleKey{}).(*handle)
	if !ok {
		return nil
	}
	ev := Event(ctx, h.action, server.Call{Method: h.method, Principal: h.principal, Request: h.request, Code: "ok"})
	if f.ResourceID != "" {
		ev.ResourceId = f.ResourceID
	}
	if ev.GetAccountId() == "" {
		ev.AccountId = f.AccountID
	}
	if len(f.Details) > 0 {
		if ev.Details == nil {
			ev.Details = map[string]string{}
		}
		maps.Copy(ev.Details, f.Details)
	}
	redact(ev)
	if err := outbox.AddMessage(ctx, tx, ev.GetId(), natsx.AuditSubject(h.r.ns, ev.GetAccountId()), ev); err != nil {
		return err
	}
	h.recorded.Store(true)
	return nil
}

// ActorSecretScanning is the actor of the changes a signed leak report makes (the keys
// service's POST /v1/secret-scanning/reports): GitHub's secret scanning, or whoever else
// holds a key LATCHKEY_SCANNING_PUBLIC_KEYS names. Audit events by it carry no actor id.
const ActorSecretScanning = "secret_scanning"

// RecordBy writes, with tx, the audit event of a change that no audited RPC made: one made
// on behalf of actor (e.g. Actor{Type: ActorSecretScanning}) by a handler outside the gRPC
// chain. The event says "ok", action a, filed under f.AccountID ("" for no account: "_"),
// on the resource f.ResourceID, with f.Details; request id, client address and user agent
// come from ctx as for any call (requestid, callmeta). It commits with tx or not at all,
// as Record's events do, and is redacted like every event. ns is the NATS namespace.
func RecordBy(ctx context.Context, tx outbox.Execer, ns string, actor *auditv1.Actor, a Action, f Facts) error {
	ev := Event(ctx, a, server.Call{Code: "ok"})
	ev.Actor = actor
	ev.AccountId = f.AccountID
	ev.ResourceId = f.ResourceID
	if len(f.Details) > 0 {
		ev.Details = maps.Clone(f.Details)
	}
	redact(ev)
	return outbox.AddMessage(ctx, tx, ev.GetId(), natsx.AuditSubject(ns, ev.GetAccountId()), ev)
}

// OnCall is a server.GRPCConfig.OnCall hook: it records calls the REST bridge refused
// before the gRPC chain (and so Interceptor) saw them, and every call when Interceptor is
// not installed.
func (r *Recorder) OnCall(ctx context.Context, c server.Call) {
	a, ok := r.actions[c.Method]
	if !ok {
		return
	}
	if _, inChain := grpc.Method(ctx); inChain && r.intercepting.Load() {
		return
	}
	r.write(ctx, a, c)
}

// write stores the event of a finished call in the outbox on its own.
func (r *Recorder) write(ctx context.Context, a Action, c server.Call) {
	ev := Event(ctx, a, c)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := outbox.AddMessage(wctx, r.pool, ev.GetId(), natsx.AuditSubject(r.ns, ev.GetAccountId()), ev); err != nil {
		r.log.Error("audit event not recorded", zap.String("action", a.Name), zap.String("request_id", ev.GetRequestId()), zap.Error(err))
		return
	}
	r.notify()
}

// Event builds the audit event of a finished call, redacted (see the package comment).
func Event(ctx context.Context, a Action, c server.Call) *auditv1.AuditEvent {
	ev := &auditv1.AuditEvent{
		Id:           ids.New(ids.Audit),
		Time:         timestamppb.Now(),
		Actor:        &auditv1.Actor{Type: "anonymous"},
		Action:       a.Name,
		ResourceType: a.Resource,
		ResourceId:   first(a.ResourceID, c.Response, c.Request),
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
		ev.AccountId = accountOf(a, c)
	}
	details := map[string]string{}
	for name, path := range a.Details {
		if v := first([]string{path}, c.Response, c.Request); v != "" {
			details[name] = v
		}
	}
	if c.Code != "ok" && c.Message != "" {
		details["message"] = c.Message
	}
	if len(details) > 0 {
		ev.Details = details
	}
	redact(ev)
	return ev
}

// accountOf is the account an event of a call whose caller is bound to none is filed
// under: one named by the successful call's response (the account it made or signed in
// to), or by the request of an operator call that succeeded; otherwise none. A request
// alone never decides it: anyone can name any account id.
func accountOf(a Action, c server.Call) string {
	if c.Code != "ok" {
		return ""
	}
	if v := first(a.Account, c.Response); v != "" {
		return v
	}
	if p := c.Principal; p != nil && p.Kind == auth.KindOperator {
		return first(a.Account, c.Request)
	}
	return ""
}

// maxDetail bounds each detail value, in bytes.
const maxDetail = 300

// redact removes keys from every text of ev that may quote input, then bounds details
// (after redaction, so a cut never leaves part of a key behind).
func redact(ev *auditv1.AuditEvent) {
	for _, f := range []*string{&ev.ResourceId, &ev.RequestId, &ev.UserAgent, &ev.KeyId} {
		*f = keyformat.Redact(*f)
	}
	for k, v := range ev.Details {
		ev.Details[k] = truncate(keyformat.Redact(v), maxDetail)
	}
}

func actorID(p *auth.Principal) string {
	if p.Kind == auth.KindOperator {
		return ""
	}
	return p.Actor()
}

// first returns the first non-empty value of paths in msgs, in order.
func first(paths []string, msgs ...any) string {
	for _, msg := range msgs {
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
