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

// TestOriginAllowed: the origin rule on its own, as POST /v1/session-keys asks it, agrees
// with Decide on a live key.
func TestOriginAllowed(t *testing.T) {
	app := "https://app.example.com"
	cases := []struct {
		name   string
		f      Facts
		origin string
		want   bool
	}{
		{"server to server, browser type", Facts{Browser: true, AllowedOrigins: []string{app}}, "", true},
		{"server to server, not a browser type", Facts{}, "", true},
		{"server to server, browser-only", Facts{Browser: true, BrowserOnly: true, AllowedOrigins: []string{app}}, "", false},
		{"listed origin", Facts{Browser: true, AllowedOrigins: []string{app}}, app, true},
		{"other origin", Facts{Browser: true, AllowedOrigins: []string{app}}, "https://evil.example.com", false},
		{"empty list, browser type", Facts{Browser: true}, app, true},
		{"empty list, browser-only", Facts{Browser: true, BrowserOnly: true}, app, false},
		{"browser-only, listed", Facts{Browser: true, BrowserOnly: true, AllowedOrigins: []string{app}}, app, true},
		{"browser-only, case differs", Facts{Browser: true, BrowserOnly: true, AllowedOrigins: []string{app}}, "https://APP.example.com", false},
		{"not a browser type, any origin", Facts{AllowedOrigins: []string{app}}, app, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.f.OriginAllowed(c.origin); got != c.want {
				t.Fatalf("OriginAllowed(%q) = %v, want %v", c.origin, got, c.want)
			}
			want := OK
			if !c.want {
				want = OriginNotAllowed
			}
			if got := Decide(&c.f, time.Now(), c.origin, ""); got != want {
				t.Fatalf("Decide = %s, want %s", got, want)
			}
		})
	}
}
