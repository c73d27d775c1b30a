package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
)

// lockHeadsSQL locks the chain heads of a batch's accounts, in account order so that two
// appenders never wait on each other in a cycle.
const lockHeadsSQL = `SELECT account_id, sequence, hash, checkpoint_sequence FROM chain_heads
	WHERE account_id = ANY($1) ORDER BY account_id FOR UPDATE`

// createHeadsSQL starts the chains of accounts seen for the first time.
const createHeadsSQL = `INSERT INTO chain_heads (account_id, sequence, hash)
	SELECT a, 0, $2 FROM unnest($1::text[]) AS a ORDER BY a
	ON CONFLICT (account_id) DO NOTHING`

// existingSQL finds which of a batch's events are already stored.
const existingSQL = `SELECT id FROM events WHERE id = ANY($1)`

// insertEventsSQL stores a batch in one statement; ON CONFLICT makes a stored event's
// redelivery a no-op even if it raced past existingSQL.
const insertEventsSQL = `INSERT INTO events (id, account_id, sequence, occurred_at, actor_type, actor_id,
	key_id, action, resource_type, resource_id, result, request_id, client_ip, user_agent, details, prev_hash, hash)
SELECT id, account_id, sequence, occurred_at, actor_type, actor_id,
	key_id, action, resource_type, resource_id, result, request_id, client_ip, user_agent, details::jsonb, prev_hash, hash
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[],
	$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
	$15::text[], $16::text[], $17::text[])
	AS t(id, account_id, sequence, occurred_at, actor_type, actor_id,
	key_id, action, resource_type, resource_id, result, request_id, client_ip, user_agent, details, prev_hash, hash)
ON CONFLICT (id) DO NOTHING`

// moveHeadsSQL records each chain's new last link.
const moveHeadsSQL = `UPDATE chain_heads AS h SET sequence = u.sequence, hash = u.hash
	FROM unnest($1::text[], $2::bigint[], $3::text[]) AS u(account_id, sequence, hash)
	WHERE h.account_id = u.account_id`

// maxAttempts bounds the retries of a batch that lost a race (deadlock, serialization, or
// an event stored meanwhile by another replica under another account).
const maxAttempts = 5

// errRaced means an event counted as new was stored by someone else before our insert:
// the chain just computed has a hole, so the transaction is retried from scratch.
var errRaced = errors.New("store: an event was stored concurrently; retrying the batch")

type head struct {
	sequence     int64
	hash         string
	checkpointed int64
	moved        bool
}

// Append stores each event once, by id, in one transaction: an event already stored (or
// earlier in evs) is skipped; each new one gets the next sequence of its account's chain,
// the previous event's hash as prev_hash, and its own hash. stored[i] reports whether
// evs[i] was new. Nothing is stored unless everything is.
func (s *Store) Append(ctx context.Context, evs []chain.Content) (stored []bool, err error) {
	for attempt := 1; ; attempt++ {
		stored, err = s.appendOnce(ctx, evs)
		if err == nil || attempt == maxAttempts || !retryable(err) || ctx.Err() != nil {
			return stored, err
		}
	}
}

func retryable(err error) bool {
	if errors.Is(err, errRaced) {
		return true
	}
	switch postgres.Code(err) {
	case postgres.SerializationFailure, postgres.DeadlockDetected:
		return true
	}
	return false
}

func (s *Store) appendOnce(ctx context.Context, evs []chain.Content) ([]bool, error) {
	stored := make([]bool, len(evs))
	if len(evs) == 0 {
		return stored, nil
	}
	ids := make([]string, 0, len(evs))
	firstOf := make(map[string]int, len(evs))
	var accounts []string
	seenAccount := map[string]bool{}
	for i := range evs {
		if _, dup := firstOf[evs[i].ID]; dup {
			continue
		}
		firstOf[evs[i].ID] = i
		ids = append(ids, evs[i].ID)
		if a := evs[i].AccountID; !seenAccount[a] {
			seenAccount[a] = true
			accounts = append(accounts, a)
		}
	}
	slices.Sort(accounts)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	heads, err := lockHeads(ctx, tx, accounts)
	if err != nil {
		return nil, err
	}
	existing := make(map[string]bool)
	rows, err := tx.Query(ctx, existingSQL, ids)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		existing[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	var b batch
	h := chain.NewHasher()
	for i := range evs {
		e := &evs[i]
		if firstOf[e.ID] != i || existing[e.ID] {
			continue
		}
		hd := heads[e.AccountID]
		link := chain.Link{Sequence: hd.sequence + 1, PrevHash: hd.hash}
		link.Hash = h.Hash(link.PrevHash, e)
		hd.sequence, hd.hash, hd.moved = link.Sequence, link.Hash, true
		if err := b.add(e, link); err != nil {
			return nil, err
		}
		stored[i] = true
	}
	if len(b.id) == 0 {
		return stored, tx.Commit(ctx)
	}
	tag, err := tx.Exec(ctx, insertEventsSQL, b.id, b.account, b.sequence, b.time, b.actorType, b.actorID,
		b.keyID, b.action, b.resourceType, b.resourceID, b.result, b.requestID, b.clientIP, b.userAgent,
		b.details, b.prevHash, b.hash)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() != int64(len(b.id)) {
		return nil, errRaced
	}
	var hAccounts, hHashes []string
	var hSeqs []int64
	var due []chain.Checkpoint
	for _, a := range accounts {
		if hd := heads[a]; hd.moved {
			hAccounts, hSeqs, hHashes = append(hAccounts, a), append(hSeqs, hd.sequence), append(hHashes, hd.hash)
			if s.cps.Every > 0 && hd.sequence-hd.checkpointed >= s.cps.Every {
				due = append(due, s.sign(a, chain.KindHead, hd.sequence, hd.hash))
			}
		}
	}
	if _, err := tx.Exec(ctx, moveHeadsSQL, hAccounts, hSeqs, hHashes); err != nil {
		return nil, err
	}
	if err := insertCheckpoints(ctx, tx, due); err != nil {
		return nil, err
	}
	return stored, tx.Commit(ctx)
}

// lockHeads locks (creating where needed) the chain head of each account.
func lockHeads(ctx context.Context, tx pgx.Tx, accounts []string) (map[string]*head, error) {
	heads := make(map[string]*head, len(accounts))
	read := func(accounts []string) error {
		rows, err := tx.Query(ctx, lockHeadsSQL, accounts)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var a string
			hd := &head{}
			if err := rows.Scan(&a, &hd.sequence, &hd.hash, &hd.checkpointed); err != nil {
				return err
			}
			heads[a] = hd
		}
		return rows.Err()
	}
	if err := read(accounts); err != nil {
		return nil, err
	}
	if len(heads) == len(accounts) {
		return heads, nil
	}
	var missing []string
	for _, a := range accounts {
		if heads[a] == nil {
			missing = append(missing, a)
		}
	}
	if _, err := tx.Exec(ctx, createHeadsSQL, missing, chain.Genesis); err != nil {
		return nil, err
	}
	if err := read(missing); err != nil {
		return nil, err
	}
	if len(heads) != len(accounts) {
		return nil, errors.New("store: chain heads vanished while being created")
	}
	return heads, nil
}

// batch holds a batch's columns for insertEventsSQL.
type batch struct {
	id, account, actorType, actorID, keyID, action, resourceType, resourceID []string
	result, requestID, clientIP, userAgent, details, prevHash, hash          []string
	sequence                                                                 []int64
	time                                                                     []time.Time
}

func (b *batch) add(e *chain.Content, l chain.Link) error {
	details := []byte("{}")
	if len(e.Details) > 0 {
		var err error
		if details, err = json.Marshal(e.Details); err != nil {
			return err
		}
	}
	b.id = append(b.id, e.ID)
	b.account = append(b.account, e.AccountID)
	b.sequence = append(b.sequence, l.Sequence)
	b.time = append(b.time, e.Time.UTC().Truncate(time.Microsecond))
	b.actorType = append(b.actorType, e.ActorType)
	b.actorID = append(b.actorID, e.ActorID)
	b.keyID = append(b.keyID, e.KeyID)
	b.action = append(b.action, e.Action)
	b.resourceType = append(b.resourceType, e.ResourceType)
	b.resourceID = append(b.resourceID, e.ResourceID)
	b.result = append(b.result, e.Result)
	b.requestID = append(b.requestID, e.RequestID)
	b.clientIP = append(b.clientIP, e.ClientIP)
	b.userAgent = append(b.userAgent, e.UserAgent)
	b.details = append(b.details, string(details))
	b.prevHash = append(b.prevHash, l.PrevHash)
	b.hash = append(b.hash, l.Hash)
	return nil
}
