package keyformat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProfileNames(t *testing.T) {
	want := []string{"deeptracer", "default", "envkeys", "gmk", "lumiqtrace", "typed"}
	if got := ProfileNames(); !slices.Equal(got, want) {
		t.Fatalf("ProfileNames() = %v, want %v", got, want)
	}
}

func TestEveryProfileHasTheManagementTypes(t *testing.T) {
	for name, r := range profiles(t) {
		for _, req := range requiredTypes {
			if _, ok := r.Lookup(req); !ok {
				t.Errorf("profile %q lacks type %q", name, req)
			}
		}
		acct, _ := r.Lookup("account")
		if !slices.Contains(acct.Capabilities, "keys:write") || !acct.Mintable || acct.Scope != ScopeAccount {
			t.Errorf("profile %q: account type cannot manage keys: %+v", name, acct)
		}
		ing, _ := r.Lookup("ingest")
		if !slices.Contains(ing.Capabilities, "ingest") || !ing.Mintable {
			t.Errorf("profile %q: ingest type cannot ingest: %+v", name, ing)
		}
	}
}

// The shapes each profile exists to reproduce.
func TestProfileShapes(t *testing.T) {
	ps := profiles(t)
	get := func(profile, typ string) *Type {
		t.Helper()
		ty, ok := ps[profile].Lookup(typ)
		if !ok {
			t.Fatalf("profile %q lacks type %q", profile, typ)
		}
		return ty
	}

	anon := get("typed", "anonymous")
	if anon.Prefix != "gt_anon_" || !anon.Anonymous || anon.Mintable || !anon.Browser ||
		anon.DataTTL.Duration != 48*time.Hour || anon.ClaimGrace.Duration != 720*time.Hour {
		t.Errorf("typed anonymous = %+v", anon)
	}
	if a, ok := ps["typed"].Anonymous(); !ok || a != anon {
		t.Errorf("typed Anonymous() = %v, %v; want its anonymous type", a, ok)
	}
	if !reflect.DeepEqual(anon.Capabilities, []string{"ingest", "read"}) {
		t.Errorf("typed anonymous capabilities = %v, want ingest and basic reads", anon.Capabilities)
	}
	// gt_dev_ carries every capability the scheme names.
	if dev := get("typed", "ingest"); dev.Prefix != "gt_dev_" || dev.Scope != ScopeEnvironment ||
		!reflect.DeepEqual(dev.Capabilities, []string{"ingest", "read", "enrichment", "sourcemaps"}) {
		t.Errorf("typed ingest = %+v", dev)
	}
	// Browser session keys ingest and do nothing else: no management capability.
	if s := get("typed", "session"); s.Prefix != "gt_session_" || s.Mintable || !reflect.DeepEqual(s.Capabilities, []string{"ingest"}) ||
		s.SessionWindow.Duration != time.Hour {
		t.Errorf("typed session = %+v", s)
	}
	if s, ok := ps["typed"].Session(); !ok || s.Prefix != "gt_session_" {
		t.Errorf("typed Session() = %v, %v; want gt_session_", s, ok)
	}

	if e := get("envkeys", "ingest"); e.Scope != ScopeEnvironment || e.Encoding != EncodingBase62 || !e.Checksum {
		t.Errorf("envkeys ingest = %+v", e)
	}

	dt := get("deeptracer", "ingest")
	if dt.Prefix != "dt_" || dt.Encoding != EncodingHex || dt.RandomBytes != 12 || dt.Checksum || !dt.Browser || dt.KeyLen(dt.Prefix) != 3+24 {
		t.Errorf("deeptracer ingest = %+v", dt)
	}
	// One key per project, replaced on revoke, in the product's own error bodies.
	if p, ok := ps["deeptracer"].PerProject(); !ok || p != dt || !dt.ReplaceOnRevoke {
		t.Errorf("deeptracer per_project = %v, %v; want its ingest type, replaced on revoke", p, ok)
	}
	if g := ps["deeptracer"].GatewayErrors(); g.Shape != ShapeError || g.Messages["unauthenticated"] != "Missing or invalid API key" ||
		g.Messages["origin_not_allowed"] != "Origin not allowed" {
		t.Errorf("deeptracer gateway_errors = %+v", g)
	}
	if g := ps["default"].GatewayErrors(); g.Shape != "" || g.Messages != nil {
		t.Errorf("default gateway_errors = %+v; want the envelope", g)
	}
	if c, ok := ps["gmk"].Servers(); !ok || c.Prefix != "gmk_cru_live_" {
		t.Errorf("gmk servers type = %v, %v; want gmk_cru_live_", c, ok)
	}

	if a := get("gmk", "account"); a.Prefix != "gmk_acct_live_" || a.RequiresPlan != "pro" || a.Scope != ScopeAccount {
		t.Errorf("gmk account = %+v", a)
	}
	if c := get("gmk", "ingest"); c.Prefix != "gmk_cru_live_" || !slices.Equal(c.LegacyPrefixes, []string{"col_"}) || c.Scope != ScopeProject {
		t.Errorf("gmk ingest = %+v", c)
	}

	lq := get("lumiqtrace", "ingest")
	if lq.Prefix != "lqt_" || lq.Encoding != EncodingHex || lq.Checksum || lq.KeyLen(lq.Prefix) != 4+64 || lq.RotationGrace.Duration != 24*time.Hour {
		t.Errorf("lumiqtrace ingest = %+v", lq)
	}
}

func TestLoadProfileDefault(t *testing.T) {
	for _, n := range []string{"", "default"} {
		r, err := LoadProfile(n)
		if err != nil || r != Default() {
			t.Errorf("LoadProfile(%q) = %p, %v; want Default()", n, r, err)
		}
	}
}

func writeProfile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A file written from Default()'s types loads back to the same types: the JSON
// form is complete and round-trips.
func TestLoadProfileFileRoundTrip(t *testing.T) {
	b, err := json.MarshalIndent(profileFile{Types: Default().Types()}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"rotation_grace": "24h"`) {
		t.Errorf("durations not written as Go duration strings:\n%s", b)
	}
	r, err := LoadProfile(writeProfile(t, string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Types(), Default().Types()) {
		t.Fatalf("round trip changed the types:\n%+v\n%+v", r.Types(), Default().Types())
	}
}

func TestLoadProfileRejects(t *testing.T) {
	ingest := `{"name":"ingest","prefix":"a_","encoding":"hex","random_bytes":16,"capabilities":["ingest"],"scope":"project"}`
	account := `{"name":"account","prefix":"b_","encoding":"hex","random_bytes":16,"capabilities":["keys:write"],"scope":"account"}`
	tests := []struct {
		name, body, want string
	}{
		{"no account type", `{"types":[` + ingest + `]}`, `must define a type named "account"`},
		{"no ingest type", `{"types":[` + account + `]}`, `must define a type named "ingest"`},
		{"unknown field", `{"types":[` + ingest + `,` + account + `],"extra":1}`, `unknown field "extra"`},
		{"unknown type field", `{"types":[` + strings.Replace(ingest, `"name"`, `"nmae"`, 1) + `]}`, `unknown field "nmae"`},
		{"invalid type", `{"types":[` + strings.Replace(ingest, `"a_"`, `"a"`, 1) + `,` + account + `]}`, `prefix "a" must match`},
		{"bad duration", `{"types":[` + strings.Replace(ingest, `"scope"`, `"data_ttl":"2 days","scope"`, 1) + `]}`, `invalid duration`},
		{"trailing data", `{"types":[` + ingest + `,` + account + `]} {}`, `trailing data`},
		{"not JSON", `types: []`, `decoding JSON`},
		{"unknown error shape", `{"gateway_errors":{"shape":"xml"},"types":[` + ingest + `,` + account + `]}`, `shape "xml" must be "envelope" or "error"`},
		{"bad error code", `{"gateway_errors":{"messages":{"Not Found":"x"}},"types":[` + ingest + `,` + account + `]}`, `code "Not Found" must match`},
		{"empty error message", `{"gateway_errors":{"messages":{"unauthenticated":""}},"types":[` + ingest + `,` + account + `]}`, `message of "unauthenticated" must be 1 to 512 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadProfile(writeProfile(t, tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadProfile error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := LoadProfile(writeProfile(t, `{"types":[`+ingest+`,`+account+`]}`)); err != nil {
		t.Fatalf("minimal valid profile rejected: %v", err)
	}
	_, err := LoadProfile(filepath.Join(t.TempDir(), "missing.json"))
	if err == nil || !strings.Contains(err.Error(), "neither a built-in profile") {
		t.Fatalf("missing file error = %v", err)
	}
}

// TestProfileRoundTrip: every built-in profile written out by Registry.Profile reads back
// as the same types and SDK settings, and an edit shows in the file.
func TestProfileRoundTrip(t *testing.T) {
	for _, name := range ProfileNames() {
		r, err := LoadProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := r.Profile(nil)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseProfile(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(back.Types(), r.Types()) || back.SDK() != r.SDK() || !reflect.DeepEqual(back.GatewayErrors(), r.GatewayErrors()) {
			t.Errorf("%s does not read back as itself:\n%s", name, b)
		}
	}
	b, err := Default().Profile(func(t *Type) {
		if t.Anonymous {
			t.ClaimGrace = Duration{2 * time.Second}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseProfile(b)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := back.Anonymous(); a.ClaimGrace.Duration != 2*time.Second {
		t.Errorf("edited claim_grace = %s", a.ClaimGrace)
	}
}
