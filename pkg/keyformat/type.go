package keyformat

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Encoding is the alphabet of a key body.
type Encoding string

const (
	// EncodingBase62 packs the most entropy per character and survives
	// double-click selection, so it is the default.
	EncodingBase62 Encoding = "base62"
	// EncodingHex exists to reproduce schemes that use lowercase hex bodies.
	EncodingHex Encoding = "hex"
)

// Scope is what a key is bound to; it decides which fields a key needs at creation
// and what the gateway checks.
type Scope string

const (
	// ScopeAccount keys act for the whole account (management keys).
	ScopeAccount Scope = "account"
	// ScopeProject keys are bound to one project, any of its environments.
	ScopeProject Scope = "project"
	// ScopeEnvironment keys are bound to one project and one of its environments.
	ScopeEnvironment Scope = "environment"
)

// MaxDuration bounds every duration of a type (rotation_grace, data_ttl, claim_grace,
// session_window):
// the keys service hands types to gateways with these as int32 seconds (keysv1.KeyType),
// so just over 68 years.
const MaxDuration = math.MaxInt32 * time.Second

// Duration is a time.Duration that reads and writes Go duration strings ("24h"),
// because profiles are written by people and nanosecond integers are unreadable.
type Duration struct{ time.Duration }

// MarshalText writes the shortest Go duration string ("24h", not "24h0m0s").
func (d Duration) MarshalText() ([]byte, error) {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return []byte(s), nil
}

// UnmarshalText accepts anything time.ParseDuration does.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("keyformat: invalid duration %q: %w", b, err)
	}
	d.Duration = v
	return nil
}

// RateLimit is the gateway's token bucket for one key. The zero value means the
// type sets no per-key limit (per-IP and per-account buckets still apply).
type RateLimit struct {
	// PerSecond is the sustained rate the bucket refills at.
	PerSecond float64 `json:"per_second"`
	// Burst is the bucket size: how many requests may arrive at once.
	Burst int `json:"burst"`
}

// Type is one kind of key. Types are configuration, loaded from a profile; the
// fields are the whole contract between the profile author and the services.
type Type struct {
	// Name identifies the type in the API ("ingest", "account", …); the management
	// plane relies on "ingest" and "account" existing.
	Name string `json:"name"`
	// Prefix starts every newly minted key of this type; it must end with '_' so a
	// key's prefix can be found without knowing its type.
	Prefix string `json:"prefix"`
	// Encoding is the body alphabet.
	Encoding Encoding `json:"encoding"`
	// RandomBytes is the entropy of the body in bytes (8 to 64).
	RandomBytes int `json:"random_bytes"`
	// Checksum appends a CRC32 of prefix+body, so typos and forgeries are rejected
	// without a lookup and secret scanners have no false positives.
	Checksum bool `json:"checksum"`
	// Capabilities are what keys of this type may do ("ingest", "keys:write", …).
	Capabilities []string `json:"capabilities"`
	// Scope is what a key of this type is bound to.
	Scope Scope `json:"scope"`
	// RotationGrace is how long the old key keeps working after a rotation, unless
	// the rotation call names its own grace.
	RotationGrace Duration `json:"rotation_grace,omitzero"`
	// DataTTL is how long data ingested with such a key is retained; zero leaves it
	// to the plan.
	DataTTL Duration `json:"data_ttl,omitzero"`
	// Browser allows use from a browser, subject to the project's allowed origins.
	Browser bool `json:"browser,omitempty"`
	// RequiresPlan is the plan an account needs to create such keys; empty means any.
	RequiresPlan string `json:"requires_plan,omitempty"`
	// RateLimit is the per-key bucket at the gateway.
	RateLimit RateLimit `json:"rate_limit,omitzero"`
	// LegacyPrefixes are older prefixes still accepted at verification (never
	// minted), so that keys another system minted keep working once adopted (POST
	// /v1/keys:import). A legacy key is its prefix and any body of LegacyBodyMin to
	// LegacyBodyMax characters of [A-Za-z0-9_-], with no checksum: its bodies follow the
	// other system's rules, not this type's (docs/keys.md, "Legacy keys").
	LegacyPrefixes []string `json:"legacy_prefixes,omitempty"`
	// Anonymous keys are minted without an account and may later be claimed.
	Anonymous bool `json:"anonymous,omitempty"`
	// ClaimGrace is how long an anonymous key keeps working after it is claimed,
	// so SDKs already deployed with it have time to switch.
	ClaimGrace Duration `json:"claim_grace,omitzero"`
	// Mintable allows creation through the management API; false for keys minted
	// elsewhere (sessions, anonymous keys).
	Mintable bool `json:"mintable,omitempty"`
	// SessionWindow makes this the profile's browser session type, minted by
	// POST /v1/session-keys: each key works for this long from its minting, only from a
	// browser whose Origin the project allows, and for ingest only (docs/keys.md,
	// "Browser session keys"). Zero for every other type.
	SessionWindow Duration `json:"session_window,omitzero"`
	// Servers makes this the profile's collector type: POST /v1/servers mints one key of it
	// for each server it creates, bound to that server's project and to the server, which
	// every request the key sends carries (Latchkey-Server-Id). At most one type; scope
	// project (DESIGN "Seed schemes", servers and collector keys).
	Servers bool `json:"servers,omitempty"`
	// PerProject: a project holds exactly one live key of this type, minted when the
	// project is created (POST /v1/projects answers it); a second is already_exists. At most
	// one type; scope project.
	PerProject bool `json:"per_project,omitempty"`
	// ReplaceOnRevoke: revoking a key of this type mints its replacement in the same call
	// (the revoke answers {key, replacement: {key, secret}}). Only with PerProject.
	ReplaceOnRevoke bool `json:"replace_on_revoke,omitempty"`
	// OnExposed is what a leak report (POST /v1/secret-scanning/reports) does to a live key
	// of this type; OnExposedRevoke when empty.
	OnExposed OnExposed `json:"on_exposed,omitempty"`
}

// OnExposed is what a leak report does to a key: its exposed_at is set either way.
type OnExposed string

const (
	// OnExposedRevoke revokes the key at once, reason "exposed" (the default).
	OnExposedRevoke OnExposed = "revoke"
	// OnExposedNotify only records and announces the leak (key.exposed): for keys whose
	// owners must rotate them themselves, as a revocation would stop a fleet.
	OnExposedNotify OnExposed = "notify"
)

// ExposedAction is what a leak report does to a key of this type.
func (t *Type) ExposedAction() OnExposed {
	if t.OnExposed == "" {
		return OnExposedRevoke
	}
	return t.OnExposed
}

// SessionCapability is the one capability a session type may carry: session keys live in
// browsers, where anyone can read them, so they may send data and do nothing else.
const SessionCapability = "ingest"

// BrowserOnly reports whether keys of this type work only from a browser: session types,
// whose keys live in web pages (DESIGN "Seed schemes", browser session keys).
func (t *Type) BrowserOnly() bool { return t.SessionWindow.Duration > 0 }

// log2of62 is the entropy of one base62 character in bits.
var log2of62 = math.Log2(62)

// BodyLen is the number of body characters: enough base62 characters to carry
// RandomBytes of entropy, or two hex characters per byte. It is 0 for an unknown
// encoding.
func (t *Type) BodyLen() int {
	switch t.Encoding {
	case EncodingBase62:
		// 62^n is never a power of two, so the quotient is never an integer and
		// float rounding cannot land on the wrong side for 8..64 bytes (tested).
		return int(math.Ceil(float64(t.RandomBytes*8) / log2of62))
	case EncodingHex:
		return 2 * t.RandomBytes
	default:
		return 0
	}
}

// KeyLen is the length of a key of this type that carries prefix (the current
// prefix or a legacy one).
func (t *Type) KeyLen(prefix string) int {
	n := len(prefix) + t.BodyLen()
	if t.Checksum {
		n += ChecksumLen
	}
	return n
}

// clone deep-copies t so that registries never share slices with callers.
func (t Type) clone() Type {
	if t.Capabilities != nil {
		t.Capabilities = append([]string(nil), t.Capabilities...)
	}
	if t.LegacyPrefixes != nil {
		t.LegacyPrefixes = append([]string(nil), t.LegacyPrefixes...)
	}
	return t
}
