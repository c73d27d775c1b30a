package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/latchkey/latchkey/services/audit/internal/record"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// Cursors makes and reads listing cursors: the (time, id) of a page's last event, with a
// MAC over it and the account, so a client can neither forge a position nor replay one
// account's cursor on another.
//
// Layout (before unpadded base64url): version byte 1, time as int64 big-endian
// microseconds since the Unix epoch, the id's bytes, then the first 16 bytes of
// HMAC-SHA-256(key, account_id || 0 || everything before the MAC).
type Cursors struct {
	key [sha256.Size]byte
}

const (
	cursorVersion = 1
	cursorMACLen  = 16
	// maxCursorLen bounds what is decoded at all.
	maxCursorLen = 2 * (1 + 8 + record.MaxIDLen + cursorMACLen)
)

// NewCursors returns cursors keyed by secret.
func NewCursors(secret string) *Cursors {
	return &Cursors{key: sha256.Sum256([]byte("latchkey.audit.cursor\x00" + secret))}
}

// Encode returns the cursor of position p in the account's listing.
func (c *Cursors) Encode(accountID string, p store.Position) string {
	b := make([]byte, 0, 1+8+len(p.ID)+cursorMACLen)
	b = append(b, cursorVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Time.UnixMicro())) //nolint:gosec // two's complement round-trips
	b = append(b, p.ID...)
	b = append(b, c.mac(accountID, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads a cursor back; ok is false for anything Encode did not make for accountID.
func (c *Cursors) Decode(accountID, s string) (p store.Position, ok bool) {
	if len(s) > maxCursorLen {
		return p, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 1+8+1+cursorMACLen || b[0] != cursorVersion {
		return p, false
	}
	body, mac := b[:len(b)-cursorMACLen], b[len(b)-cursorMACLen:]
	if !hmac.Equal(mac, c.mac(accountID, body)) {
		return p, false
	}
	micros := int64(binary.BigEndian.Uint64(body[1:9])) //nolint:gosec // two's complement round-trips
	return store.Position{Time: time.UnixMicro(micros).UTC(), ID: string(body[9:])}, true
}

func (c *Cursors) mac(accountID string, body []byte) []byte {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(accountID))
	m.Write([]byte{0})
	m.Write(body)
	return m.Sum(nil)[:cursorMACLen]
}
