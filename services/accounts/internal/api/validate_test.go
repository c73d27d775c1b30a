package api

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNormaliseOrigin(t *testing.T) {
	good := map[string]string{
		"https://example.com":           "https://example.com",
		"HTTPS://Example.COM":           "https://example.com",
		"https://example.com:443":       "https://example.com",
		"http://example.com:80":         "http://example.com",
		"http://example.com:443":        "http://example.com:443",
		"https://app.example.com:8443":  "https://app.example.com:8443",
		"https://app.example.com:0080":  "https://app.example.com:80",
		"http://localhost:3000":         "http://localhost:3000",
		"http://127.0.0.1:8080":         "http://127.0.0.1:8080",
		"http://[::1]:8080":             "http://[::1]:8080",
		"https://[2001:DB8::1]":         "https://[2001:db8::1]",
		"https://xn--bcher-kva.example": "https://xn--bcher-kva.example",
	}
	for in, want := range good {
		got, ok := normaliseOrigin(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{
		"", "null", "*", "example.com", "//example.com", "ftp://example.com", "ws://example.com",
		"https://", "https://:443", "https://example.com/", "https://example.com/a", "https://example.com?",
		"https://example.com?a=1", "https://example.com#", "https://example.com#x", "https://u@example.com",
		"https://u:p@example.com", "https://*.example.com", "https://exa_mple.com", "https://-a.com", "https://a-.com",
		"https://a..com", "https://example.com:", "https://example.com:65536", "https://example.com:0",
		"https://example.com:-1", "https://example.com:http", "https://::1", "https://[::1", "https://bücher.example",
		"https://example.com\\@evil.com", "https://exa mple.com", " https://example.com", "https://example.com\n",
		"https://[fe80::1%25eth0]", "javascript:alert(1)", "https:example.com", "https://" + strings.Repeat("a", 300),
		"https://" + strings.Repeat("a", 64) + ".com",
	} {
		_, ok := normaliseOrigin(in)
		require.False(t, ok, "%q", in)
	}
}

func TestParseEmail(t *testing.T) {
	for in, want := range map[string]string{
		"a@example.com":           "a@example.com",
		"Alice.Smith@Example.COM": "alice.smith@example.com",
		"a+tag@sub.example.io":    "a+tag@sub.example.io",
	} {
		got, err := parseEmail(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got)
	}
	for _, in := range []string{
		"", "a", "a@", "@example.com", "a b@example.com", "Alice <a@example.com>", "<a@example.com>",
		" a@example.com", "a@example.com ", "a@example.com (comment)", "a@@example.com", "a@example.com,b@example.com",
		strings.Repeat("a", 250) + "@x.io",
	} {
		_, err := parseEmail(in)
		require.Error(t, err, "%q", in)
	}
}

func TestParseEnvironments(t *testing.T) {
	got, err := parseEnvironments([]string{"dev", "prod-eu-1", "a"})
	require.NoError(t, err)
	require.Equal(t, []string{"dev", "prod-eu-1", "a"}, got)
	for _, in := range [][]string{
		nil,
		{""},
		{"Dev"},
		{"1dev"},
		{"-dev"},
		{"dev_1"},
		{"dév"},
		{"dev", "dev"},
		{"a" + strings.Repeat("b", 32)},
	} {
		_, err := parseEnvironments(in)
		require.Error(t, err, "%q", in)
	}
	_, err = parseEnvironments([]string{"a" + strings.Repeat("b", 31)})
	require.NoError(t, err)
}

func TestParseName(t *testing.T) {
	got, err := parseName("name", "  My project  ")
	require.NoError(t, err)
	require.Equal(t, "My project", got)
	_, err = parseName("name", strings.Repeat("é", 100))
	require.NoError(t, err)
	for _, in := range []string{"", "   ", strings.Repeat("é", 101), "a\x00", "a\u0085b", "a\x7f"} {
		_, err := parseName("name", in)
		require.Error(t, err, "%q", in)
	}
}

func FuzzNormaliseOrigin(f *testing.F) {
	for _, s := range []string{"https://example.com", "http://[::1]:80", "https://a.b:1/", "x://y", "https://%41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := normaliseOrigin(s)
		if !ok {
			return
		}
		// A normalised origin is a fixed point.
		again, ok := normaliseOrigin(got)
		if !ok || again != got {
			t.Fatalf("%q normalised to %q, which normalises to %q (%v)", s, got, again, ok)
		}
	})
}

func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{"a@example.com", "A <a@b>", "\"q\"@x.io", "a@[127.0.0.1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseEmail(s)
		if err != nil {
			return
		}
		if got != strings.ToLower(s) || len(got) > maxEmailLen {
			t.Fatalf("%q accepted as %q", s, got)
		}
	})
}
