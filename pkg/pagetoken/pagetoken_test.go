package pagetoken

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTripAndBinding(t *testing.T) {
	c := New("server secret 0123456789", 64)
	tok := c.Encode([]byte("key_01"), "keys.ListKeys", "acc_1", "prj_1", "")
	pos, err := c.Decode(tok, "keys.ListKeys", "acc_1", "prj_1", "")
	require.NoError(t, err)
	require.Equal(t, "key_01", string(pos))

	for name, binding := range map[string][]string{
		"other filter":  {"keys.ListKeys", "acc_1", "prj_2", ""},
		"other account": {"keys.ListKeys", "acc_2", "prj_1", ""},
		"other list":    {"accounts.ListProjects", "acc_1", "prj_1", ""},
		// Length prefixes keep filters from sliding into each other.
		"shifted": {"keys.ListKeys", "acc_1", "prj_1" + "", "", ""},
		"joined":  {"keys.ListKeys", "acc_1prj_1", ""},
	} {
		_, err := c.Decode(tok, binding...)
		require.ErrorIs(t, err, ErrInvalid, name)
	}
	_, err = New("another server secret", 64).Decode(tok, "keys.ListKeys", "acc_1", "prj_1", "")
	require.ErrorIs(t, err, ErrInvalid, "another key")
}

func TestForgedAndAlteredTokens(t *testing.T) {
	c := New("server secret 0123456789", 64)
	binding := []string{"keys.ListKeys", "acc_1"}
	tok := c.Encode([]byte("key_05"), binding...)
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	require.NoError(t, err)

	altered := append([]byte(nil), raw...)
	altered[len("x")+len("key_0")] = '9' // the position, MAC kept
	for name, bad := range map[string]string{
		"hand-made (the old format)": base64.RawURLEncoding.EncodeToString([]byte("key_05")),
		"altered position":           base64.RawURLEncoding.EncodeToString(altered),
		"truncated":                  tok[:len(tok)-2],
		"not base64":                 "!!!",
		"padded base64":              tok + "==",
		"too long":                   strings.Repeat("A", 200),
		"empty body":                 base64.RawURLEncoding.EncodeToString(make([]byte, 17)),
	} {
		_, err := c.Decode(bad, binding...)
		require.ErrorIs(t, err, ErrInvalid, name)
	}
}

func FuzzDecode(f *testing.F) {
	c := New("server secret 0123456789", 64)
	f.Add(c.Encode([]byte("key_01"), "l", "a"))
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		pos, err := c.Decode(tok, "l", "a")
		if err == nil {
			require.Equal(t, tok, c.Encode(pos, "l", "a"), "only what Encode made decodes")
		}
	})
}
