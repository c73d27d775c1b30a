package verdict

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Second), now.Add(time.Hour)
	base := func() Facts {
		return Facts{Capabilities: []string{"ingest"}, Browser: true, AllowedOrigins: []string{"https://app.example.com"}}
	}
	cases := []struct {
		name       string
		edit       func(*Facts)
		origin     string
		capability string
		want       Code
	}{
		{"active key, no origin", func(*Facts) {}, "", "ingest", OK},
		{"allowed origin", func(*Facts) {}, "https://app.example.com", "ingest", OK},
		{"other origin", func(*Facts) {}, "https://evil.example.com", "ingest", OriginNotAllowed},
		{"empty allow-list admits any origin", func(f *Facts) { f.AllowedOrigins = nil }, "https://x.example", "", OK},
		{"non-browser type refuses any origin", func(f *Facts) { f.Browser = false }, "https://app.example.com", "", OriginNotAllowed},
		{"browser-only key from an allowed origin", func(f *Facts) { f.BrowserOnly = true }, "https://app.example.com", "ingest", OK},
		{"browser-only key without an origin", func(f *Facts) { f.BrowserOnly = true }, "", "ingest", OriginNotAllowed},
		{"browser-only key from another origin", func(f *Facts) { f.BrowserOnly = true }, "https://evil.example.com", "ingest", OriginNotAllowed},
		{"browser-only key, empty allow-list admits none", func(f *Facts) { f.BrowserOnly, f.AllowedOrigins = true, nil }, "https://x.example", "ingest", OriginNotAllowed},
		{"browser-only key, expiry before origin", func(f *Facts) { f.BrowserOnly, f.ExpiresAt = true, past }, "", "ingest", Expired},
		{"revoked beats everything", func(f *Facts) { f.RevokedAt = past; f.ExpiresAt = past }, "", "", Revoked},
		{"expired", func(f *Facts) { f.ExpiresAt = past }, "", "", Expired},
		{"expires exactly now", func(f *Facts) { f.ExpiresAt = now }, "", "", Expired},
		{"not yet expired", func(f *Facts) { f.ExpiresAt = future }, "", "", OK},
		{"in grace", func(f *Facts) { f.GraceUntil = future }, "", "", OK},
		{"grace over", func(f *Facts) { f.GraceUntil = past }, "", "", Expired},
		{"suspended account", func(f *Facts) { f.AccountSuspended = true }, "", "", AccountSuspended},
		{"missing capability", func(*Facts) {}, "", "keys:write", InsufficientCapability},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := base()
			c.edit(&f)
			if got := Decide(&f, now, c.origin, c.capability); got != c.want {
				t.Fatalf("Decide = %s, want %s", got, c.want)
			}
		})
	}
}
