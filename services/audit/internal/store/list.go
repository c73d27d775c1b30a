package store

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Position is a place in an account's listing: events sort by (time, id), newest first.
type Position struct {
	Time time.Time
	ID   string
}

// Filter narrows a listing; empty fields do not filter. Matches are exact.
type Filter struct {
	KeyID        string
	ResourceType string
	ResourceID   string
	Action       string
	Result       string
	// Before, when set, lists only events after this position in the listing (older, or
	// as old with a smaller id).
	Before *Position
	// Limit is how many events to return at most.
	Limit int
}

// The listing query is assembled from these fragments, each filter's followed by its
// parameter number. An index per filter column, (account_id, <column>, occurred_at, id),
// serves a listing newest first without a sort, and the row comparison on
// (occurred_at, id) starts the index scan at the cursor.
const (
	listSQL             = `SELECT ` + eventColumns + ` FROM events WHERE account_id = $1`
	listKeySQL          = ` AND key_id = $`
	listResourceTypeSQL = ` AND resource_type = $`
	listResourceIDSQL   = ` AND resource_id = $`
	listActionSQL       = ` AND action = $`
	listResultSQL       = ` AND result = $`
	listBeforeTimeSQL   = ` AND (occurred_at, id) < ($`
	listBeforeIDSQL     = `, $`
	listBeforeEndSQL    = `)`
	listOrderLimitSQL   = ` ORDER BY occurred_at DESC, id DESC LIMIT $`
)

// List returns up to f.Limit of the account's events matching f, newest first.
func (s *Store) List(ctx context.Context, accountID string, f Filter) ([]Event, error) {
	var q strings.Builder
	q.WriteString(listSQL)
	args := []any{accountID}
	arg := func(frag string, v any) {
		args = append(args, v)
		q.WriteString(frag)
		q.WriteString(strconv.Itoa(len(args)))
	}
	for _, c := range []struct {
		frag, v string
	}{
		{listKeySQL, f.KeyID},
		{listResourceTypeSQL, f.ResourceType},
		{listResourceIDSQL, f.ResourceID},
		{listActionSQL, f.Action},
		{listResultSQL, f.Result},
	} {
		if c.v != "" {
			arg(c.frag, c.v)
		}
	}
	if f.Before != nil {
		arg(listBeforeTimeSQL, f.Before.Time)
		arg(listBeforeIDSQL, f.Before.ID)
		q.WriteString(listBeforeEndSQL)
	}
	arg(listOrderLimitSQL, f.Limit)

	rows, err := s.pool.Query(ctx, q.String(), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]Event, 0, f.Limit)
	for rows.Next() {
		var e Event
		if err := scanEvent(rows, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
