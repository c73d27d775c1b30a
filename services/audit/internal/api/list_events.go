package api

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/audit/internal/record"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// Page sizes of ListEvents.
const (
	defaultLimit = 100
	maxLimit     = 1000
	// maxFilterLen bounds a filter value, in bytes; no stored value is longer.
	maxFilterLen = 512
)

// pageLimit is a listing's page size: limit, or defaultLimit when unset.
func pageLimit(limit int32) (int, error) {
	switch {
	case limit == 0: // proto3: unset and 0 are one and the same
		return defaultLimit, nil
	case limit < 1 || limit > maxLimit:
		return 0, errBadLimit
	}
	return int(limit), nil
}

// ListEvents lists the caller's account's events, newest first by (time, id), a page at a
// time. The cursor is the last event of the previous page, so walking the pages yields
// every event once even when many share a timestamp. An event stored during a walk shows
// up in it only if it sorts after the cursor (an older time: a late delivery); newer ones
// are on the first page of the next walk. The cursor carries a MAC bound to the account
// and the filters (see Cursors), so a forged or borrowed cursor, or one reused with other
// filters, is invalid_argument.
func (s *Server) ListEvents(ctx context.Context, req *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
	account, err := reader(ctx, req.GetAccountId())
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(req.GetLimit())
	if err != nil {
		return nil, err
	}
	f := store.Filter{
		KeyID: req.GetKeyId(), ResourceType: req.GetResourceType(), ResourceID: req.GetResourceId(),
		Action: req.GetAction(), Result: req.GetResult(), Limit: limit + 1,
	}
	for name, v := range map[string]string{
		"key_id": f.KeyID, "resource_type": f.ResourceType, "resource_id": f.ResourceID,
		"action": f.Action, "result": f.Result,
	} {
		if len(v) > maxFilterLen {
			return nil, invalid("%s is over %d bytes", name, maxFilterLen)
		}
		if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			return nil, invalid("%s must be UTF-8 without control characters", name)
		}
	}
	binding := cursorBinding(account, f)
	if c := req.GetCursor(); c != "" {
		pos, ok := s.cursors.Decode(binding, c)
		if !ok {
			return nil, errBadCursor
		}
		f.Before = &pos
	}
	evs, err := s.store.List(ctx, account, f)
	if err != nil {
		return nil, postgres.Error(err, nil)
	}
	resp := &auditv1.ListEventsResponse{}
	if len(evs) > limit {
		evs = evs[:limit]
		last := evs[limit-1]
		resp.NextCursor = s.cursors.Encode(binding, store.Position{Time: last.Time, ID: last.ID})
	}
	resp.Events = make([]*auditv1.AuditEvent, len(evs))
	for i := range evs {
		resp.Events[i] = record.ToProto(&evs[i])
	}
	return resp, nil
}
