package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
	"github.com/latchkey/latchkey/services/accounts/internal/token"
	"github.com/latchkey/latchkey/services/accounts/migrations"
)

func noEvent(store.Project) *eventsv1.Event { return nil }

func newAccount(t *testing.T, ctx context.Context, s *store.Store, email string) (store.Account, []byte) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	a := store.Account{ID: ids.New(ids.Account), Name: "a", Plan: store.PlanFree, Status: store.StatusActive, TrialEndsAt: now, CreatedAt: now, UpdatedAt: now}
	u := store.User{ID: ids.New(ids.User), AccountID: a.ID, Email: email, PasswordHash: "x", CreatedAt: now}
	tok, err := token.New()
	require.NoError(t, err)
	sess := store.Session{ID: ids.New(ids.Session), UserID: u.ID, AccountID: a.ID, TokenHash: token.Hash(tok), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	require.NoError(t, s.SignUp(ctx, a, u, sess))
	return a, sess.TokenHash
}

// TestProjectCapIsSpentOnlyByChangesThatCommit: the project cap is taken in the change's
// own transaction, so deleting a project that does not exist (or is another account's)
// spends nothing, while creating and deleting real projects does.
func TestProjectCapIsSpentOnlyByChangesThatCommit(t *testing.T) {
	ctx := context.Background()
	s := store.New(testutil.DB(t, "accounts", outbox.Migrations, quota.Migrations, migrations.FS), testutil.Namespace(t))
	a, _ := newAccount(t, ctx, s, "a@example.com")
	c := quota.Cap{Action: "create or delete projects", PerHour: 2}
	noDeleteEvent := func() *eventsv1.Event { return nil }
	for range 3 {
		require.ErrorIs(t, s.DeleteProject(ctx, a.ID, ids.New(ids.Project), c, noDeleteEvent), store.ErrNotFound)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := store.Project{ID: ids.New(ids.Project), AccountID: a.ID, Name: "p", Environments: []string{"dev"}, CreatedAt: now, UpdatedAt: now}
	_, err := s.CreateProject(ctx, p, c, noEvent)
	require.NoError(t, err, "the failed deletions spent nothing")
	require.NoError(t, s.DeleteProject(ctx, a.ID, p.ID, c, noDeleteEvent))
	p.ID = ids.New(ids.Project)
	_, err = s.CreateProject(ctx, p, c, noEvent)
	require.True(t, apierr.IsCode(err, apierr.RateLimited), "two changes committed: the cap is spent (%v)", err)
	_, err = s.Project(ctx, a.ID, p.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "a refused creation stores nothing")
}

func TestProjectsAreBoundToTheirAccount(t *testing.T) {
	ctx := context.Background()
	s := store.New(testutil.DB(t, "accounts", outbox.Migrations, migrations.FS), testutil.Namespace(t))
	a, _ := newAccount(t, ctx, s, "a@example.com")
	b, _ := newAccount(t, ctx, s, "b@example.com")

	now := time.Now().UTC().Truncate(time.Microsecond)
	var mine []string
	for range 5 {
		p := store.Project{ID: ids.New(ids.Project), AccountID: a.ID, Name: "p", Environments: []string{"dev"}, CreatedAt: now, UpdatedAt: now}
		_, err := s.CreateProject(ctx, p, quota.Cap{}, noEvent)
		require.NoError(t, err)
		mine = append(mine, p.ID)
	}
	theirs := store.Project{ID: ids.New(ids.Project), AccountID: b.ID, Name: "q", Environments: []string{"dev"}, CreatedAt: now, UpdatedAt: now}
	_, err := s.CreateProject(ctx, theirs, quota.Cap{}, noEvent)
	require.NoError(t, err)

	got, err := s.Project(ctx, a.ID, mine[0])
	require.NoError(t, err)
	require.Empty(t, got.AllowedOrigins)
	require.NotNil(t, got.AllowedOrigins)

	_, err = s.Project(ctx, a.ID, theirs.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.UpdateProject(ctx, a.ID, theirs.ID, store.ProjectUpdate{SetName: true, Name: "x"}, now, noEvent)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, s.DeleteProject(ctx, a.ID, theirs.ID, quota.Cap{}, func() *eventsv1.Event { return nil }), store.ErrNotFound)
	kept, err := s.Project(ctx, b.ID, theirs.ID)
	require.NoError(t, err)
	require.Equal(t, "q", kept.Name)

	// Pages of two walk all five, newest (highest id) first, none of b's.
	var walked []string
	after := ""
	for {
		page, err := s.ListProjects(ctx, a.ID, after, 2)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		for _, p := range page {
			require.Equal(t, a.ID, p.AccountID)
			walked = append(walked, p.ID)
		}
		after = page[len(page)-1].ID
	}
	require.ElementsMatch(t, mine, walked)
	for i := 1; i < len(walked); i++ {
		require.Greater(t, walked[i-1], walked[i])
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	s := store.New(testutil.DB(t, "accounts", outbox.Migrations, migrations.FS), testutil.Namespace(t))
	a, hash := newAccount(t, ctx, s, "c@example.com")
	now := time.Now().UTC()

	sess, acct, err := s.LiveSession(ctx, hash, now)
	require.NoError(t, err)
	require.Equal(t, a.ID, acct.ID)
	require.True(t, sess.StepUpUntil.IsZero())

	// Step-up never outlives the session.
	until, err := s.OpenStepUp(ctx, a.ID, sess.ID, now.Add(48*time.Hour), now)
	require.NoError(t, err)
	require.WithinDuration(t, sess.ExpiresAt, until, time.Millisecond)

	_, _, err = s.LiveSession(ctx, hash, now.Add(2*time.Hour))
	require.ErrorIs(t, err, store.ErrNotFound, "expired")

	require.ErrorIs(t, s.RevokeSession(ctx, ids.New(ids.Account), sess.ID, now), store.ErrNotFound, "another account's session")
	require.NoError(t, s.RevokeSession(ctx, a.ID, sess.ID, now))
	_, _, err = s.LiveSession(ctx, hash, now)
	require.ErrorIs(t, err, store.ErrNotFound, "revoked")
	require.ErrorIs(t, s.RevokeSession(ctx, a.ID, sess.ID, now), store.ErrNotFound, "twice")
	_, err = s.OpenStepUp(ctx, a.ID, sess.ID, now.Add(time.Minute), now)
	require.ErrorIs(t, err, store.ErrNotFound)

	// The e-mail is unique.
	tok, err := token.New()
	require.NoError(t, err)
	other := store.Account{ID: ids.New(ids.Account), Name: "x", Plan: store.PlanFree, Status: store.StatusActive, TrialEndsAt: now, CreatedAt: now, UpdatedAt: now}
	u := store.User{ID: ids.New(ids.User), AccountID: other.ID, Email: "c@example.com", PasswordHash: "x", CreatedAt: now}
	err = s.SignUp(ctx, other, u, store.Session{ID: ids.New(ids.Session), UserID: u.ID, AccountID: other.ID, TokenHash: token.Hash(tok), CreatedAt: now, ExpiresAt: now})
	require.ErrorIs(t, err, store.ErrEmailTaken)
	_, err = s.Account(ctx, other.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the whole sign-up rolled back")
}

func TestPruneSessions(t *testing.T) {
	ctx := context.Background()
	s := store.New(testutil.DB(t, "accounts", outbox.Migrations, migrations.FS), testutil.Namespace(t))
	newAccount(t, ctx, s, "live@example.com") // its session ends in an hour
	now := time.Now().UTC().Truncate(time.Microsecond)
	a := store.Account{ID: ids.New(ids.Account), Name: "b", Plan: store.PlanFree, Status: store.StatusActive, TrialEndsAt: now, CreatedAt: now, UpdatedAt: now}
	u := store.User{ID: ids.New(ids.User), AccountID: a.ID, Email: "ended@example.com", PasswordHash: "x", CreatedAt: now}
	tok, err := token.New()
	require.NoError(t, err)
	ended := store.Session{ID: ids.New(ids.Session), UserID: u.ID, AccountID: a.ID, TokenHash: token.Hash(tok), CreatedAt: now.Add(-72 * time.Hour), ExpiresAt: now.Add(-48 * time.Hour)}
	require.NoError(t, s.SignUp(ctx, a, u, ended))

	n, err := s.PruneSessions(ctx, now.Add(-24*time.Hour))
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "only the session that ended over a day ago")
}

// TestEnvironmentsAddedAt: a project's environments are added at its creation; a change of
// the list stamps the environments it adds and keeps the others' entries (or their lack of
// one, for environments listed before entries were recorded); an environment dropped and
// added back is stamped later than before, even at the same clock reading.
func TestEnvironmentsAddedAt(t *testing.T) {
	ctx := context.Background()
	pool := testutil.DB(t, "accounts", outbox.Migrations, migrations.FS)
	s := store.New(pool, testutil.Namespace(t))
	a, _ := newAccount(t, ctx, s, "a@example.com")
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	p, err := s.CreateProject(ctx, store.Project{
		ID: ids.New(ids.Project), AccountID: a.ID, Name: "p",
		Environments: []string{"dev", "prd", "old"}, CreatedAt: t0, UpdatedAt: t0,
	}, quota.Cap{}, noEvent)
	require.NoError(t, err)
	require.Equal(t, map[string]time.Time{"dev": t0, "prd": t0, "old": t0}, utc(p.EnvironmentsAddedAt))
	// "old" as a project from before entries were recorded has it.
	_, err = pool.Exec(ctx, `UPDATE projects SET environments_added_at = environments_added_at - 'old' WHERE id = $1`, p.ID)
	require.NoError(t, err)

	set := func(at time.Time, envs ...string) map[string]time.Time {
		got, err := s.UpdateProject(ctx, a.ID, p.ID, store.ProjectUpdate{SetEnvironments: true, Environments: envs}, at, noEvent)
		require.NoError(t, err)
		return utc(got.EnvironmentsAddedAt)
	}
	t1 := t0.Add(time.Second)
	require.Equal(t, map[string]time.Time{"dev": t0, "qa": t1}, set(t1, "dev", "old", "qa"), "old keeps its lack of an entry")
	require.Equal(t, map[string]time.Time{"dev": t0}, set(t1, "dev", "old"))
	// Added back at the same clock reading as its drop, and with the clock behind: each stay
	// is stamped after the one before.
	require.Equal(t, map[string]time.Time{"dev": t0, "qa": t1.Add(2 * time.Microsecond)}, set(t1, "dev", "old", "qa"))
	require.Equal(t, map[string]time.Time{"dev": t0, "qa": t1.Add(2 * time.Microsecond)}, set(t0, "dev", "old", "qa"), "a change without adding stamps nothing")
	require.Equal(t, map[string]time.Time{"dev": t0}, set(t0, "dev"))
	require.Equal(t, map[string]time.Time{"dev": t0, "old": t1.Add(5 * time.Microsecond)}, set(t0, "dev", "old"), "an environment without an entry, dropped and added back, gets one")
	// Other changes leave the entries alone.
	got, err := s.UpdateProject(ctx, a.ID, p.ID, store.ProjectUpdate{SetName: true, Name: "q"}, t1.Add(time.Hour), noEvent)
	require.NoError(t, err)
	require.Equal(t, map[string]time.Time{"dev": t0, "old": t1.Add(5 * time.Microsecond)}, utc(got.EnvironmentsAddedAt))
}

func utc(m map[string]time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		out[k] = v.UTC()
	}
	return out
}
