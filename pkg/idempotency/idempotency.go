// Package idempotency gives creating calls Stripe's Idempotency-Key semantics: the same key
// and the same request within 24 hours get the stored answer (status and body), the same
// key with another request is 422 idempotency_key_reused, and concurrent duplicates do the
// work once. Only successful answers are kept (as Stripe does): a refused call may be sent
// again once its cause is fixed. Records live in each service's schema (pass Migrations to postgres.Migrate).
package idempotency

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/periodic"
)

// Migrations creates the records table.
//
//go:embed *.sql
var Migrations embed.FS

// MetadataKey carries the Idempotency-Key header (the REST bridge forwards it).
const MetadataKey = "idempotency-key"

const (
	ttl = 24 * time.Hour
	// abandoned is how long a running call may hold its key before a duplicate takes over
	// (its replica died mid-call).
	abandoned = time.Minute
	maxKeyLen = 255
)

const (
	claimSQL = `INSERT INTO idempotency_keys (account_id, key, method, fingerprint) VALUES ($1, $2, $3, $4)
		ON CONFLICT (account_id, key) DO UPDATE SET method = $3, fingerprint = $4, done = false,
			response = NULL, created_at = now()
		WHERE idempotency_keys.created_at < now() - $5 * interval '1 second'
		   OR (NOT idempotency_keys.done AND idempotency_keys.created_at < now() - $6 * interval '1 second')
		RETURNING true`
	readSQL = `SELECT method, fingerprint, done, response FROM idempotency_keys
		WHERE account_id = $1 AND key = $2`
	finishSQL  = `UPDATE idempotency_keys SET done = true, response = $3 WHERE account_id = $1 AND key = $2`
	releaseSQL = `DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND NOT done`
	pruneSQL   = `DELETE FROM idempotency_keys WHERE created_at < now() - $1 * interval '1 second'`
)

// Store keeps the records of one service.
type Store struct {
	pool    *pgxpool.Pool
	seal    []byte
	methods map[string]bool
}

// New returns a store applying to the given full method names. Records are kept under a
// hash of the Idempotency-Key. When sealKey is set, stored answers are encrypted
// (AES-256-GCM) under a key derived from sealKey, the account and the Idempotency-Key,
// which is never stored: an answer that holds a secret (a new API key) can be replayed to
// the caller who knows the Idempotency-Key, and a copy of the database reveals nothing.
func New(pool *pgxpool.Pool, sealKey []byte, methods ...string) *Store {
	s := &Store{pool: pool, seal: sealKey, methods: map[string]bool{}}
	for _, m := range methods {
		s.methods[m] = true
	}
	return s
}

var (
	errReused  = apierr.New(apierr.IdempotencyKeyReused, "this Idempotency-Key was used with a different request in the last 24 hours")
	errBadKey  = apierr.New(apierr.InvalidArgument, "Idempotency-Key must be 1 to 255 printable ASCII characters, without spaces")
	errTimeout = &apierr.Error{Code: apierr.Conflict, Message: "a request with this Idempotency-Key is still running; retry", RetryAfter: time.Second}
)

// Unary is the interceptor; it must run after authentication (records are per account).
func (s *Store) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	key := header(ctx)
	p := auth.From(ctx)
	if key == "" || !s.methods[info.FullMethod] || p == nil || p.AccountID == "" {
		return next(ctx, req)
	}
	if !validKey(key) {
		return nil, errBadKey
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return next(ctx, req)
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, err
	}
	// The caller is part of the request: another principal of the same account (an account
	// key replaying a user's account-key creation, say) must not get its answer.
	// Keyed when a seal key is set: a body may hold a plaintext key (a claim's anonymous
	// key), and a plain digest of it would be a verifier of that key kept for a day.
	fingerprint := s.fingerprint(append([]byte(info.FullMethod+"\x00"+string(p.Kind)+"\x00"+p.Actor()+"\x00"), body...))
	rec := record{account: p.AccountID, rawKey: key, key: hashKey(key)}

	deadline := time.Now().Add(10 * time.Second)
	for {
		var claimed bool
		// Detached from the caller's cancellation: a claim that lands as the client goes
		// away must reach run, which releases it when the call fails; cut short here, the
		// key would read as still running until it is abandoned.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := s.pool.QueryRow(cctx, claimSQL, rec.account, rec.key, info.FullMethod, fingerprint, ttl.Seconds(), abandoned.Seconds()).Scan(&claimed)
		cancel()
		if err == nil {
			return s.run(ctx, rec, req, next)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		var (
			method   string
			stored   []byte
			done     bool
			response []byte
		)
		err = s.pool.QueryRow(ctx, readSQL, rec.account, rec.key).Scan(&method, &stored, &done, &response)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // released between the two statements: claim again
		}
		if err != nil {
			return nil, err
		}
		if method != info.FullMethod || !bytes.Equal(stored, fingerprint) {
			return nil, errReused
		}
		if done {
			return s.replay(rec, info.FullMethod, response)
		}
		// A duplicate still running: wait for its answer rather than doing the work twice.
		if time.Now().After(deadline) {
			return nil, errTimeout
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// run does the call and stores its answer. As with Stripe, only work that was done is
// stored: a refused call (bad input, step-up or plan missing, limits, outages) releases the
// key, so the same request may run again once the cause is fixed.
func (s *Store) run(ctx context.Context, rec record, req any, next grpc.UnaryHandler) (any, error) {
	resp, callErr := next(ctx, req)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if callErr != nil {
		if _, err := s.pool.Exec(wctx, releaseSQL, rec.account, rec.key); err != nil {
			logging.From(ctx).Warn("idempotency: release failed", zap.Error(err))
		}
		return nil, callErr
	}
	body, err := proto.Marshal(resp.(proto.Message))
	if err == nil {
		body, err = s.sealBody(rec, body)
	}
	if err == nil {
		_, err = s.pool.Exec(wctx, finishSQL, rec.account, rec.key, body)
	}
	if err != nil {
		// The work is done; a retry would do it again. Say so in the log, answer the caller.
		logging.From(ctx).Error("idempotency: answer not stored", zap.Error(err))
	}
	return resp, nil
}

// replay rebuilds the stored answer.
func (s *Store) replay(rec record, method string, body []byte) (any, error) {
	out, err := responseType(method)
	if err != nil {
		return nil, err
	}
	if body, err = s.openBody(rec, body); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(body, out); err != nil {
		return nil, err
	}
	return out, nil
}

// record names one Idempotency-Key of one account.
type record struct {
	account string
	rawKey  string
	// key is what is stored: a hash of rawKey.
	key string
}

// fingerprint is what a request is recognised by: an HMAC-SHA-256 under the seal key, or
// a plain SHA-256 without one.
func (s *Store) fingerprint(b []byte) []byte {
	if len(s.seal) == 0 {
		sum := sha256.Sum256(b)
		return sum[:]
	}
	m := hmac.New(sha256.New, s.seal)
	m.Write(b)
	return m.Sum(nil)
}

func hashKey(k string) string {
	sum := sha256.Sum256([]byte(k))
	return hex.EncodeToString(sum[:])
}

func (s *Store) aead(rec record) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, s.seal)
	mac.Write([]byte(rec.account + "\x00" + rec.rawKey))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func (s *Store) sealBody(rec record, body []byte) ([]byte, error) {
	if s.seal == nil {
		return body, nil
	}
	a, err := s.aead(rec)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, body, []byte(rec.key)), nil
}

func (s *Store) openBody(rec record, body []byte) ([]byte, error) {
	if s.seal == nil {
		return body, nil
	}
	a, err := s.aead(rec)
	if err != nil {
		return nil, err
	}
	if len(body) < a.NonceSize() {
		return nil, errors.New("idempotency: stored answer is damaged")
	}
	return a.Open(nil, body[:a.NonceSize()], body[a.NonceSize():], []byte(rec.key))
}

// responseType makes an empty response message of a full method name (/pkg.Service/Method).
func responseType(method string) (proto.Message, error) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return nil, errors.New("idempotency: bad method name " + method)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, errors.New("idempotency: not a service: " + svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, errors.New("idempotency: no method " + method)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, err
	}
	return mt.New().Interface(), nil
}

func header(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(MetadataKey); len(v) > 0 {
		return v[0]
	}
	return ""
}

func validKey(k string) bool {
	if len(k) == 0 || len(k) > maxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// Prune deletes expired records every hour until ctx ends.
func (s *Store) Prune(ctx context.Context) error {
	return periodic.Every(ctx, time.Hour, func(ctx context.Context) {
		_, _ = s.pool.Exec(ctx, pruneSQL, ttl.Seconds())
	})
}
