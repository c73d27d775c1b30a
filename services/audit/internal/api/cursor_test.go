package api

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/services/audit/internal/store"
)

var (
	acc1 = cursorBinding("acc_1", store.Filter{})
	acc2 = cursorBinding("acc_2", store.Filter{})
)

func TestCursorRoundTrip(t *testing.T) {
	c := NewCursors("secret-one")
	for _, p := range []store.Position{
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC), ID: "aud_01jabc"},
		{Time: time.Unix(0, 0).UTC(), ID: "x"},
		{Time: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), ID: strings.Repeat("z", 128)},
	} {
		s := c.Encode(acc1, p)
		got, ok := c.Decode(acc1, s)
		require.True(t, ok)
		require.True(t, p.Time.Equal(got.Time), "%s != %s", p.Time, got.Time)
		require.Equal(t, p.ID, got.ID)

		_, ok = c.Decode(acc2, s)
		require.False(t, ok, "another account's cursor")
		_, ok = c.Decode(cursorBinding("acc_1", store.Filter{Action: "keys.create"}), s)
		require.False(t, ok, "other filters")
		_, ok = NewCursors("secret-two").Decode(acc1, s)
		require.False(t, ok, "another secret")
		raw, _ := base64.RawURLEncoding.DecodeString(s)
		for i := range raw {
			b := append([]byte(nil), raw...)
			b[i] ^= 0x20
			_, ok = c.Decode(acc1, base64.RawURLEncoding.EncodeToString(b))
			require.False(t, ok, "byte %d flipped", i)
		}
	}
}

func FuzzDecodeCursor(f *testing.F) {
	c := NewCursors("fuzz")
	f.Add(c.Encode(acc1, store.Position{Time: time.Now(), ID: "aud_1"}))
	f.Add("")
	f.Add("AQ")
	f.Add(strings.Repeat("A", 300))
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := c.Decode(acc1, s)
		if ok && c.Encode(acc1, p) != s {
			t.Fatalf("%q decoded but does not re-encode", s)
		}
	})
}
