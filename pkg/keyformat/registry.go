package keyformat

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

var (
	prefixRE     = regexp.MustCompile(`^[a-z][a-z0-9_]*_$`)
	capabilityRE = regexp.MustCompile(`^[a-z]+(:[a-z_]+)?$`)
)

const (
	minRandomBytes = 8
	maxRandomBytes = 64
)

// Registry is a validated set of key types. It is immutable after construction
// and safe for concurrent use; pointers it hands out (Lookup, Key.Type) point into
// it and must not be modified.
type Registry struct {
	types    []Type
	byName   map[string]*Type
	byPrefix map[string]*prefixInfo
	// prefixes holds the same as byPrefix: with a handful of types, comparing a few
	// strings is cheaper than hashing one.
	prefixes []*prefixInfo
	// legacy are the legacy prefixes among them, for keys whose bodies hold a '_'.
	legacy []*prefixInfo
	// anonymous is the profile's one anonymous type, nil when it has none.
	anonymous *Type
	// session is the profile's one browser session type, nil when it has none.
	session *Type
	// servers and perProject are the profile's collector type and per-project type, nil
	// when it has none (Type.Servers, Type.PerProject).
	servers, perProject *Type
	// sdk is the profile's "sdk" object as written (SDK fills in the defaults).
	sdk SDK
	// gatewayErrors is the profile's "gateway_errors" object.
	gatewayErrors GatewayErrors
}

// prefixInfo is everything Parse needs about one prefix, precomputed so the hot
// path is a map lookup and a few comparisons.
type prefixInfo struct {
	prefix string
	typ    *Type
	// legacy: a legacy prefix, whose keys follow the legacy rule (parseLegacy) and
	// none of the fields below.
	legacy   bool
	keyLen   int
	bodyLen  int
	hex      bool
	checksum bool
}

// NewRegistry validates types and builds a registry from copies of them. All
// problems are reported at once, each naming the type and the rule it breaks, so an
// operator fixes a profile in one pass.
func NewRegistry(types []Type) (*Registry, error) {
	r := &Registry{
		types:    make([]Type, len(types)),
		byName:   make(map[string]*Type, len(types)),
		byPrefix: make(map[string]*prefixInfo, len(types)),
	}
	var errs []error
	prefixOwner := map[string]string{}
	for i := range types {
		r.types[i] = types[i].clone()
		t := &r.types[i]
		label := fmt.Sprintf("type %q", t.Name)
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("keyformat: %s: "+format, append([]any{label}, args...)...))
		}
		if t.Name == "" {
			label = fmt.Sprintf("type #%d", i)
			fail("name must not be empty")
		} else if _, dup := r.byName[t.Name]; dup {
			fail("name must be unique")
		} else {
			r.byName[t.Name] = t
		}
		switch t.Encoding {
		case EncodingBase62, EncodingHex:
		default:
			fail("encoding %q must be %q or %q", t.Encoding, EncodingBase62, EncodingHex)
		}
		if t.RandomBytes < minRandomBytes || t.RandomBytes > maxRandomBytes {
			fail("random_bytes %d must be between %d and %d", t.RandomBytes, minRandomBytes, maxRandomBytes)
		}
		switch t.Scope {
		case ScopeAccount, ScopeProject, ScopeEnvironment:
		default:
			fail("scope %q must be %q, %q or %q", t.Scope, ScopeAccount, ScopeProject, ScopeEnvironment)
		}
		if len(t.Capabilities) == 0 {
			fail("capabilities must not be empty")
		}
		seenCap := map[string]bool{}
		for _, c := range t.Capabilities {
			if !capabilityRE.MatchString(c) {
				fail("capability %q must match %s", c, capabilityRE)
			}
			if seenCap[c] {
				fail("capability %q must not be listed twice", c)
			}
			seenCap[c] = true
		}
		for _, d := range []struct {
			field string
			v     time.Duration
		}{{"rotation_grace", t.RotationGrace.Duration}, {"data_ttl", t.DataTTL.Duration}, {"claim_grace", t.ClaimGrace.Duration}, {"session_window", t.SessionWindow.Duration}} {
			if d.v < 0 {
				fail("%s must not be negative", d.field)
			} else if d.v > MaxDuration {
				fail("%s must be at most %s (int32 seconds)", d.field, MaxDuration)
			}
			// Gateways learn types over gRPC in whole seconds (package typepb).
			if d.v%time.Second != 0 {
				fail("%s must be a whole number of seconds", d.field)
			}
		}
		if t.ClaimGrace.Duration != 0 && !t.Anonymous {
			fail("claim_grace applies only to anonymous types")
		}
		if t.Anonymous {
			// POST /v1/anonymous-keys mints the one anonymous type; the management API never does.
			if t.Mintable {
				fail("an anonymous type must not be mintable: POST /v1/anonymous-keys mints it")
			}
			if r.anonymous != nil {
				fail("only one type may be anonymous; %q already is", r.anonymous.Name)
			} else {
				r.anonymous = t
			}
		}
		if t.SessionWindow.Duration > 0 {
			// POST /v1/session-keys mints the one session type, for browsers only.
			if t.Mintable {
				fail("a session type must not be mintable: POST /v1/session-keys mints it")
			}
			if t.Anonymous {
				fail("a type cannot be both anonymous and a session type")
			}
			if !t.Browser {
				fail("a session type must be usable from a browser (browser: true)")
			}
			if t.Scope != ScopeEnvironment {
				fail("a session type must have scope %q: a session key is minted for one project and environment", ScopeEnvironment)
			}
			if len(t.Capabilities) != 1 || t.Capabilities[0] != SessionCapability {
				fail("a session type may carry only the capability %q", SessionCapability)
			}
			if r.session != nil {
				fail("only one type may have a session_window; %q already has", r.session.Name)
			} else {
				r.session = t
			}
		}
		if t.Servers {
			if t.Scope != ScopeProject {
				fail("a servers type must have scope %q: its keys are bound to a server's project", ScopeProject)
			}
			if t.Anonymous || t.SessionWindow.Duration > 0 {
				fail("a servers type cannot be anonymous or a session type")
			}
			if r.servers != nil {
				fail("only one type may be a servers type; %q already is", r.servers.Name)
			} else {
				r.servers = t
			}
		}
		if t.PerProject {
			if t.Scope != ScopeProject {
				fail("a per_project type must have scope %q", ScopeProject)
			}
			if t.Anonymous || t.SessionWindow.Duration > 0 || t.Servers {
				fail("a per_project type cannot be anonymous, a session type or a servers type")
			}
			if r.perProject != nil {
				fail("only one type may be per_project; %q already is", r.perProject.Name)
			} else {
				r.perProject = t
			}
		}
		if t.ReplaceOnRevoke && !t.PerProject {
			fail("replace_on_revoke applies only to a per_project type")
		}
		switch t.OnExposed {
		case "", OnExposedRevoke, OnExposedNotify:
		default:
			fail("on_exposed %q must be %q or %q", t.OnExposed, OnExposedRevoke, OnExposedNotify)
		}
		rl := t.RateLimit
		if math.IsNaN(rl.PerSecond) || math.IsInf(rl.PerSecond, 0) || rl.PerSecond < 0 || rl.Burst < 0 || rl.Burst > math.MaxInt32 {
			fail("rate_limit must be finite and not negative, its burst at most %d", math.MaxInt32)
		} else if rl.PerSecond > 0 && rl.Burst < 1 {
			fail("rate_limit burst must be at least 1 when per_second is set")
		}

		addPrefix := func(field, p string, legacy bool) {
			if !prefixRE.MatchString(p) {
				fail("%s %q must match %s", field, p, prefixRE)
				return
			}
			if owner, dup := prefixOwner[p]; dup {
				fail("%s %q is already used by type %q", field, p, owner)
				return
			}
			prefixOwner[p] = t.Name
			n := t.KeyLen(p)
			if legacy {
				n = len(p) + LegacyBodyMax
			}
			if n > MaxKeyLen {
				fail("%s %q makes keys %d bytes long, over the %d-byte limit", field, p, n, MaxKeyLen)
				return
			}
			info := &prefixInfo{
				prefix:   p,
				typ:      t,
				legacy:   legacy,
				keyLen:   t.KeyLen(p),
				bodyLen:  t.BodyLen(),
				hex:      t.Encoding == EncodingHex,
				checksum: t.Checksum,
			}
			r.byPrefix[p] = info
			r.prefixes = append(r.prefixes, info)
			if legacy {
				r.legacy = append(r.legacy, info)
			}
		}
		addPrefix("prefix", t.Prefix, false)
		for _, p := range t.LegacyPrefixes {
			addPrefix("legacy prefix", p, true)
		}
	}
	// A legacy body may hold '_', so a key under a prefix that starts with a legacy
	// prefix would read as a legacy key too: Parse could not tell which it is.
	for _, l := range r.legacy {
		for _, o := range r.prefixes {
			if o != l && strings.HasPrefix(o.prefix, l.prefix) {
				errs = append(errs, fmt.Errorf("keyformat: type %q: prefix %q starts with the legacy prefix %q of type %q, so its keys would also read as legacy keys",
					o.typ.Name, o.prefix, l.prefix, l.typ.Name))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Types returns copies of the registry's types in their configured order.
func (r *Registry) Types() []Type {
	out := make([]Type, len(r.types))
	for i := range r.types {
		out[i] = r.types[i].clone()
	}
	return out
}

// Lookup finds a type by name. The result is shared and must not be modified.
func (r *Registry) Lookup(name string) (*Type, bool) {
	t, ok := r.byName[name]
	return t, ok
}

// Anonymous returns the profile's anonymous type (the one POST /v1/anonymous-keys mints),
// false when the profile has none. The result is shared and must not be modified.
func (r *Registry) Anonymous() (*Type, bool) { return r.anonymous, r.anonymous != nil }

// Servers returns the profile's collector type (Type.Servers: the one POST /v1/servers
// mints), false when it has none. The result is shared and must not be modified.
func (r *Registry) Servers() (*Type, bool) { return r.servers, r.servers != nil }

// PerProject returns the profile's per-project type (Type.PerProject: minted with each
// project), false when it has none. The result is shared and must not be modified.
func (r *Registry) PerProject() (*Type, bool) { return r.perProject, r.perProject != nil }

// Session returns the profile's browser session type (the one with a session_window, which
// POST /v1/session-keys mints), false when the profile has none. The result is shared and
// must not be modified.
func (r *Registry) Session() (*Type, bool) { return r.session, r.session != nil }

// defaultTypes is Latchkey's own scheme.
func defaultTypes() []Type {
	day := Duration{24 * time.Hour}
	return []Type{
		{
			Name:          "ingest",
			Prefix:        "lk_ing_",
			Encoding:      EncodingBase62,
			RandomBytes:   32,
			Checksum:      true,
			Capabilities:  []string{"ingest"},
			Scope:         ScopeEnvironment,
			RotationGrace: day,
			Browser:       true,
			RateLimit:     RateLimit{PerSecond: 1000, Burst: 2000},
			Mintable:      true,
		},
		{
			Name:         "anonymous",
			Prefix:       "lk_anon_",
			Encoding:     EncodingBase62,
			RandomBytes:  32,
			Checksum:     true,
			Capabilities: []string{"ingest", "read"},
			Scope:        ScopeEnvironment,
			DataTTL:      Duration{48 * time.Hour},
			Browser:      true,
			RateLimit:    RateLimit{PerSecond: 100, Burst: 200},
			Anonymous:    true,
			ClaimGrace:   Duration{30 * day.Duration},
		},
		{
			Name:          "session",
			Prefix:        "lk_sess_",
			Encoding:      EncodingBase62,
			RandomBytes:   32,
			Checksum:      true,
			Capabilities:  []string{SessionCapability},
			Scope:         ScopeEnvironment,
			Browser:       true,
			RateLimit:     RateLimit{PerSecond: 100, Burst: 200},
			SessionWindow: Duration{time.Hour},
		},
		{
			Name:          "collector",
			Prefix:        "lk_srv_",
			Encoding:      EncodingBase62,
			RandomBytes:   32,
			Checksum:      true,
			Capabilities:  []string{"ingest"},
			Scope:         ScopeProject,
			RotationGrace: day,
			RateLimit:     RateLimit{PerSecond: 1000, Burst: 2000},
			Servers:       true,
		},
		{
			Name:          "account",
			Prefix:        "lk_acct_",
			Encoding:      EncodingBase62,
			RandomBytes:   32,
			Checksum:      true,
			Capabilities:  []string{"keys:read", "keys:write", "projects:read", "projects:write", "audit:read", "servers:manage"},
			Scope:         ScopeAccount,
			RotationGrace: day,
			RequiresPlan:  "pro",
			Mintable:      true,
		},
	}
}

var defaultRegistry = func() *Registry {
	r, err := NewRegistry(defaultTypes())
	if err != nil {
		panic(err) // a broken built-in default is a programming error caught by tests
	}
	return r
}()

// Default is Latchkey's own key scheme: "ingest" (lk_ing_), "anonymous" (lk_anon_,
// minted by POST /v1/anonymous-keys), "session" (lk_sess_, minted by POST
// /v1/session-keys), "collector" (lk_srv_, one per server, minted by POST /v1/servers) and
// "account" (lk_acct_). It is shared; the registry is immutable.
func Default() *Registry { return defaultRegistry }
