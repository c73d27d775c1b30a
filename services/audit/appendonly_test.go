package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// TestEventsAreAppendOnly: the service's role cannot change or delete events (no
// privilege); even the superuser is stopped by the trigger; and when a superuser gets round
// the trigger and edits an event, verify names exactly that event.
func TestEventsAreAppendOnly(t *testing.T) {
	e := newEnv(t)
	a := e.accounts.api.SignUp("alice")
	var ids []string
	for i := range 6 {
		ev := event(a.AccountID, time.Now().Add(time.Duration(i)*time.Millisecond))
		require.True(t, e.appendEvent(ev))
		ids = append(ids, ev.GetId())
	}
	ok, checked, bad := e.verify(a.Token)
	require.True(t, ok, bad)
	require.Equal(t, 6, checked)

	ctx := context.Background()
	refused := func(code, sql string, args ...any) {
		t.Helper()
		_, err := e.super.Exec(ctx, sql, args...)
		require.Error(t, err, sql)
		require.Equal(t, code, postgres.Code(err), "%s: %v", sql, err)
	}
	changes := []string{
		`UPDATE audit.events SET resource_id = 'forged' WHERE id = '` + ids[2] + `'`,
		`DELETE FROM audit.events WHERE id = '` + ids[2] + `'`,
		`TRUNCATE audit.events`,
		`SELECT audit.apply_retention('` + a.AccountID + `', now())`, // less than a day ago
	}

	// As the role the service's connections take (store.Connect's SET ROLE).
	_, err := e.super.Exec(ctx, `SET ROLE `+store.WriterRole)
	require.NoError(t, err)
	refused(postgres.InsufficientPriv, changes[0])
	refused(postgres.InsufficientPriv, changes[1])
	refused(postgres.InsufficientPriv, changes[2])
	refused("22023", changes[3]) // invalid_parameter_value: retention cannot reach recent events
	refused(postgres.InsufficientPriv, `UPDATE audit.events SET resource_id = 'x' WHERE false`)
	refused(postgres.InsufficientPriv, `ALTER TABLE audit.events DISABLE TRIGGER events_append_only`)
	_, err = e.super.Exec(ctx, `SELECT set_config('latchkey.audit_retention', 'on', false)`)
	require.NoError(t, err, "the setting alone grants nothing")
	refused(postgres.InsufficientPriv, changes[1])
	_, err = e.super.Exec(ctx, `RESET ROLE; RESET latchkey.audit_retention`)
	require.NoError(t, err)

	// As the superuser: the trigger refuses.
	for _, sql := range changes[:3] {
		refused(store.AppendOnlyViolation, sql)
	}
	_, err = e.super.Exec(ctx, `UPDATE audit.events SET resource_id = 'x' WHERE id = $1`, ids[2])
	require.ErrorContains(t, err, "audit events are append-only")
	require.Equal(t, 6, e.count(a.AccountID))

	// A superuser who turns triggers off (session_replication_role = replica skips
	// ordinary triggers) can edit an event; the chain catches it.
	tamper := func(sql string, args ...any) {
		t.Helper()
		err := pgx.BeginFunc(ctx, e.super, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sql, args...)
			return err
		})
		require.NoError(t, err)
	}
	tamper(`UPDATE audit.events SET resource_id = 'key_forged' WHERE id = $1`, ids[2])
	ok, checked, bad = e.verify(a.Token)
	require.False(t, ok)
	require.Equal(t, ids[2], bad)
	require.Equal(t, 3, checked)

	stored := e.storedChain(a.AccountID)
	require.Equal(t, "key_forged", stored[2].ResourceID)
	require.Equal(t, stored[2].Hash, stored[3].PrevHash, "the links are intact: only the content changed")
}

// TestRemovedEventsAreCaught: removing the newest events is caught by the chain head,
// removing one in the middle by the next link, and removing the oldest by the missing
// signed retention cut (checkpoint_test.go has retention's own cut).
func TestRemovedEventsAreCaught(t *testing.T) {
	e := newEnv(t)
	a := e.accounts.api.SignUp("alice")
	var ids []string
	for i := range 5 {
		ev := event(a.AccountID, time.Now().Add(time.Duration(i)*time.Millisecond))
		require.True(t, e.appendEvent(ev))
		ids = append(ids, ev.GetId())
	}
	ctx := context.Background()
	tamper := func(sql string, args ...any) {
		t.Helper()
		_, err := e.super.Exec(ctx, `SET session_replication_role = replica`)
		require.NoError(t, err)
		_, err = e.super.Exec(ctx, sql, args...)
		require.NoError(t, err)
		_, err = e.super.Exec(ctx, `RESET session_replication_role`)
		require.NoError(t, err)
	}
	tamper(`DELETE FROM audit.events WHERE id = $1`, ids[4])
	ok, checked, bad := e.verify(a.Token)
	require.False(t, ok, "the newest event is gone: the chain ends before its head")
	require.Equal(t, ids[3], bad, "named by the last event that remains")
	require.Equal(t, 4, checked)

	tamper(`DELETE FROM audit.events WHERE id = $1`, ids[1])
	ok, checked, bad = e.verify(a.Token)
	require.False(t, ok)
	require.Equal(t, ids[2], bad, "the event after the hole no longer links")
	require.Equal(t, 2, checked)

	tamper(`DELETE FROM audit.events WHERE id = ANY($1)`, ids[:2])
	tamper(`UPDATE audit.chain_heads SET sequence = 4, hash = (SELECT hash FROM audit.events WHERE id = $1) WHERE account_id = $2`, ids[3], a.AccountID)
	ok, checked, bad = e.verify(a.Token)
	require.False(t, ok, "a chain that starts later with no signed retention cut")
	require.Equal(t, ids[2], bad)
	require.Equal(t, 1, checked)
}
