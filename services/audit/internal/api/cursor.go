package api

import (
	"encoding/binary"
	"time"

	"github.com/latchkey/latchkey/pkg/pagetoken"
	"github.com/latchkey/latchkey/services/audit/internal/record"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// Cursors makes and reads ListEvents cursors, the service's page tokens (pkg/pagetoken):
// the (time, id) of a page's last event, bound to the account and every filter, so a
// client can neither forge a position nor replay a cursor on another account or with
// other filters.
//
// Position layout: time as int64 big-endian microseconds since the Unix epoch, then the
// id's bytes.
type Cursors struct {
	codec *pagetoken.Codec
}

// NewCursors returns cursors keyed by secret.
func NewCursors(secret string) *Cursors {
	return &Cursors{codec: pagetoken.New(secret, 8+record.MaxIDLen)}
}

// cursorBinding is the listing a cursor belongs to: the account and the filters (not the
// limit, which may change from page to page).
func cursorBinding(accountID string, f store.Filter) []string {
	return []string{"audit.ListEvents", accountID, f.KeyID, f.ResourceType, f.ResourceID, f.Action, f.Result}
}

// Encode returns the cursor of position p in the listing of binding (cursorBinding).
func (c *Cursors) Encode(binding []string, p store.Position) string {
	b := make([]byte, 0, 8+len(p.ID))
	b = binary.BigEndian.AppendUint64(b, uint64(p.Time.UnixMicro())) //nolint:gosec // two's complement round-trips
	b = append(b, p.ID...)
	return c.codec.Encode(b, binding...)
}

// Decode reads a cursor back; ok is false for anything Encode did not make for binding.
func (c *Cursors) Decode(binding []string, s string) (p store.Position, ok bool) {
	b, err := c.codec.Decode(s, binding...)
	if err != nil || len(b) < 8+1 {
		return p, false
	}
	micros := int64(binary.BigEndian.Uint64(b[:8])) //nolint:gosec // two's complement round-trips
	return store.Position{Time: time.UnixMicro(micros).UTC(), ID: string(b[8:])}, true
}
