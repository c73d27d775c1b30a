package keyformat

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func validType() Type {
	return Type{
		Name:         "ingest",
		Prefix:       "lk_ing_",
		Encoding:     EncodingBase62,
		RandomBytes:  32,
		Checksum:     true,
		Capabilities: []string{"ingest"},
		Scope:        ScopeEnvironment,
	}
}

func TestNewRegistryRejects(t *testing.T) {
	other := func(mod func(*Type)) Type {
		o := validType()
		o.Name, o.Prefix = "other", "lk_oth_"
		if mod != nil {
			mod(&o)
		}
		return o
	}
	tests := []struct {
		name  string
		mod   func(*Type)
		extra []Type
		want  string // the rule, as the message names it
	}{
		{"empty name", func(t *Type) { t.Name = "" }, nil, `type #0: name must not be empty`},
		{"duplicate name", nil, []Type{other(func(t *Type) { t.Name = "ingest" })}, `type "ingest": name must be unique`},
		{"prefix without underscore", func(t *Type) { t.Prefix = "lk" }, nil, `prefix "lk" must match ^[a-z][a-z0-9_]*_$`},
		{"empty prefix", func(t *Type) { t.Prefix = "" }, nil, `prefix "" must match`},
		{"uppercase prefix", func(t *Type) { t.Prefix = "LK_" }, nil, `prefix "LK_" must match`},
		{"prefix starting with digit", func(t *Type) { t.Prefix = "1k_" }, nil, `prefix "1k_" must match`},
		{"prefix with dash", func(t *Type) { t.Prefix = "lk-ing_" }, nil, `prefix "lk-ing_" must match`},
		{"bad legacy prefix", func(t *Type) { t.LegacyPrefixes = []string{"col"} }, nil, `type "ingest": legacy prefix "col" must match`},
		{"prefix used twice", nil, []Type{other(func(t *Type) { t.Prefix = "lk_ing_" })}, `type "other": prefix "lk_ing_" is already used by type "ingest"`},
		{"legacy prefix equal to another prefix", nil, []Type{other(func(t *Type) { t.LegacyPrefixes = []string{"lk_ing_"} })}, `legacy prefix "lk_ing_" is already used`},
		{"legacy prefix equal to own prefix", func(t *Type) { t.LegacyPrefixes = []string{"lk_ing_"} }, nil, `legacy prefix "lk_ing_" is already used by type "ingest"`},
		{"random bytes too few", func(t *Type) { t.RandomBytes = 7 }, nil, `random_bytes 7 must be between 8 and 64`},
		{"random bytes too many", func(t *Type) { t.RandomBytes = 65 }, nil, `random_bytes 65 must be between 8 and 64`},
		{"unknown encoding", func(t *Type) { t.Encoding = "base64" }, nil, `encoding "base64" must be "base62" or "hex"`},
		{"empty encoding", func(t *Type) { t.Encoding = "" }, nil, `encoding "" must be`},
		{"unknown scope", func(t *Type) { t.Scope = "org" }, nil, `scope "org" must be "account", "project" or "environment"`},
		{"no capabilities", func(t *Type) { t.Capabilities = nil }, nil, `capabilities must not be empty`},
		{"bad capability", func(t *Type) { t.Capabilities = []string{"Keys:write"} }, nil, `capability "Keys:write" must match ^[a-z]+(:[a-z_]+)?$`},
		{"capability with two colons", func(t *Type) { t.Capabilities = []string{"keys:a:b"} }, nil, `capability "keys:a:b" must match`},
		{"empty capability", func(t *Type) { t.Capabilities = []string{""} }, nil, `capability "" must match`},
		{"duplicate capability", func(t *Type) { t.Capabilities = []string{"ingest", "ingest"} }, nil, `capability "ingest" must not be listed twice`},
		{"negative grace", func(t *Type) { t.RotationGrace = Duration{-time.Hour} }, nil, `rotation_grace must not be negative`},
		{"negative ttl", func(t *Type) { t.DataTTL = Duration{-time.Hour} }, nil, `data_ttl must not be negative`},
		{"ttl beyond int32 seconds", func(t *Type) { t.DataTTL = Duration{MaxDuration + time.Second} }, nil, `data_ttl must be at most`},
		{"claim grace on a non-anonymous type", func(t *Type) { t.ClaimGrace = Duration{time.Hour} }, nil, `claim_grace applies only to anonymous types`},
		{"mintable anonymous type", func(t *Type) { t.Anonymous, t.Mintable = true, true }, nil, `an anonymous type must not be mintable`},
		{"two anonymous types", func(t *Type) { t.Anonymous, t.Mintable = true, false }, []Type{other(func(t *Type) { t.Anonymous, t.Mintable = true, false })}, `type "other": only one type may be anonymous; "ingest" already is`},
		{"mintable session type", func(t *Type) { t.SessionWindow, t.Mintable = Duration{time.Hour}, true }, nil, `a session type must not be mintable`},
		{"anonymous session type", func(t *Type) { t.SessionWindow, t.Anonymous = Duration{time.Hour}, true }, nil, `cannot be both anonymous and a session type`},
		{"session type not for browsers", func(t *Type) { t.SessionWindow, t.Browser = Duration{time.Hour}, false }, nil, `a session type must be usable from a browser`},
		{"session type for a whole project", func(t *Type) { t.SessionWindow, t.Scope = Duration{time.Hour}, ScopeProject }, nil, `a session type must have scope "environment"`},
		{"session type with management capabilities", func(t *Type) {
			t.SessionWindow, t.Capabilities = Duration{time.Hour}, []string{"ingest", "keys:write"}
		}, nil, `a session type may carry only the capability "ingest"`},
		{"two session types", func(t *Type) { t.SessionWindow = Duration{time.Hour} }, []Type{other(func(t *Type) { t.SessionWindow = Duration{time.Hour} })}, `type "other": only one type may have a session_window; "ingest" already has`},
		{"negative session window", func(t *Type) { t.SessionWindow = Duration{-time.Hour} }, nil, `session_window must not be negative`},
		{"sub-second session window", func(t *Type) { t.SessionWindow = Duration{time.Millisecond} }, nil, `session_window must be a whole number of seconds`},
		{"servers type of environment scope", func(t *Type) { t.Servers = true }, nil, `a servers type must have scope "project"`},
		{"two servers types", func(t *Type) { t.Servers, t.Scope = true, ScopeProject }, []Type{other(func(t *Type) { t.Servers, t.Scope = true, ScopeProject })}, `type "other": only one type may be a servers type; "ingest" already is`},
		{"per_project type of environment scope", func(t *Type) { t.PerProject = true }, nil, `a per_project type must have scope "project"`},
		{"per_project servers type", func(t *Type) { t.PerProject, t.Servers, t.Scope = true, true, ScopeProject }, nil, `a per_project type cannot be anonymous, a session type or a servers type`},
		{"two per_project types", func(t *Type) { t.PerProject, t.Scope = true, ScopeProject }, []Type{other(func(t *Type) { t.PerProject, t.Scope = true, ScopeProject })}, `type "other": only one type may be per_project; "ingest" already is`},
		{"replace_on_revoke without per_project", func(t *Type) { t.ReplaceOnRevoke = true }, nil, `replace_on_revoke applies only to a per_project type`},
		{"unknown on_exposed", func(t *Type) { t.OnExposed = "ignore" }, nil, `on_exposed "ignore" must be "revoke" or "notify"`},
		{"negative rate", func(t *Type) { t.RateLimit = RateLimit{PerSecond: -1, Burst: 1} }, nil, `rate_limit must be finite and not negative`},
		{"infinite rate", func(t *Type) { t.RateLimit = RateLimit{PerSecond: math.Inf(1), Burst: 1} }, nil, `rate_limit must be finite`},
		{"burst over int32", func(t *Type) { t.RateLimit = RateLimit{PerSecond: 1, Burst: math.MaxInt32 + 1} }, nil, `its burst at most 2147483647`},
		{"sub-second grace", func(t *Type) { t.RotationGrace = Duration{1500 * time.Millisecond} }, nil, `rotation_grace must be a whole number of seconds`},
		{"sub-second ttl", func(t *Type) { t.DataTTL = Duration{time.Millisecond} }, nil, `data_ttl must be a whole number of seconds`},
		{"rate without burst", func(t *Type) { t.RateLimit = RateLimit{PerSecond: 10} }, nil, `burst must be at least 1 when per_second is set`},
		{"key too long", func(t *Type) { t.Prefix = strings.Repeat("a", 250) + "_" }, nil, `over the 256-byte limit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ := validType()
			if tt.mod != nil {
				tt.mod(&typ)
			}
			r, err := NewRegistry(append([]Type{typ}, tt.extra...))
			if err == nil {
				t.Fatalf("NewRegistry accepted the config, registry %v", r)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name the rule %q", err, tt.want)
			}
		})
	}
}

func TestNewRegistryReportsEveryProblem(t *testing.T) {
	typ := validType()
	typ.Encoding, typ.Scope = "b64", "org"
	_, err := NewRegistry([]Type{typ})
	if err == nil || !strings.Contains(err.Error(), "encoding") || !strings.Contains(err.Error(), "scope") {
		t.Fatalf("want both problems reported, got %v", err)
	}
}

func TestNewRegistryCopies(t *testing.T) {
	types := []Type{validType()}
	r, err := NewRegistry(types)
	if err != nil {
		t.Fatal(err)
	}
	types[0].Capabilities[0] = "mutated"
	types[0].Prefix = "xx_"
	got, _ := r.Lookup("ingest")
	if got.Capabilities[0] != "ingest" || got.Prefix != "lk_ing_" {
		t.Fatalf("registry shares memory with its input: %+v", got)
	}
	out := r.Types()
	out[0].Capabilities[0] = "mutated"
	if got.Capabilities[0] != "ingest" {
		t.Fatal("Types() shares memory with the registry")
	}
}

func TestDefault(t *testing.T) {
	r := Default()
	want := map[string]Type{
		"ingest": {
			Name: "ingest", Prefix: "lk_ing_", Encoding: EncodingBase62, RandomBytes: 32, Checksum: true,
			Capabilities: []string{"ingest"}, Scope: ScopeEnvironment, RotationGrace: Duration{24 * time.Hour},
			Browser: true, RateLimit: RateLimit{PerSecond: 1000, Burst: 2000}, Mintable: true,
		},
		"anonymous": {
			Name: "anonymous", Prefix: "lk_anon_", Encoding: EncodingBase62, RandomBytes: 32, Checksum: true,
			Capabilities: []string{"ingest", "read"}, Scope: ScopeEnvironment, DataTTL: Duration{48 * time.Hour},
			Browser: true, RateLimit: RateLimit{PerSecond: 100, Burst: 200}, Anonymous: true,
			ClaimGrace: Duration{720 * time.Hour},
		},
		"session": {
			Name: "session", Prefix: "lk_sess_", Encoding: EncodingBase62, RandomBytes: 32, Checksum: true,
			Capabilities: []string{"ingest"}, Scope: ScopeEnvironment, Browser: true,
			RateLimit: RateLimit{PerSecond: 100, Burst: 200}, SessionWindow: Duration{time.Hour},
		},
		"collector": {
			Name: "collector", Prefix: "lk_srv_", Encoding: EncodingBase62, RandomBytes: 32, Checksum: true,
			Capabilities: []string{"ingest"}, Scope: ScopeProject, RotationGrace: Duration{24 * time.Hour},
			RateLimit: RateLimit{PerSecond: 1000, Burst: 2000}, Servers: true,
		},
		"account": {
			Name: "account", Prefix: "lk_acct_", Encoding: EncodingBase62, RandomBytes: 32, Checksum: true,
			Capabilities: []string{"keys:read", "keys:write", "projects:read", "projects:write", "audit:read", "servers:manage"},
			Scope:        ScopeAccount, RotationGrace: Duration{24 * time.Hour}, RequiresPlan: "pro", Mintable: true,
		},
	}
	if n := len(r.Types()); n != len(want) {
		t.Fatalf("Default has %d types, want %d", n, len(want))
	}
	for name, w := range want {
		got, ok := r.Lookup(name)
		if !ok {
			t.Fatalf("Default lacks %q", name)
		}
		if !reflect.DeepEqual(*got, w) {
			t.Errorf("Default %q = %+v, want %+v", name, *got, w)
		}
	}
	if a, ok := r.Anonymous(); !ok || a.Name != "anonymous" {
		t.Errorf("Default's anonymous type = %v, %v; want the anonymous type", a, ok)
	}
	if c, ok := r.Servers(); !ok || c.Name != "collector" {
		t.Errorf("Default's servers type = %v, %v; want the collector type", c, ok)
	}
	if p, ok := r.PerProject(); ok {
		t.Errorf("Default has a per_project type: %v", p)
	}
	if s, ok := r.Session(); !ok || s.Name != "session" {
		t.Errorf("Default's session type = %v, %v; want the session type", s, ok)
	}
	if _, ok := r.Lookup("nope"); ok {
		t.Error("Lookup of an unknown name succeeded")
	}
}
