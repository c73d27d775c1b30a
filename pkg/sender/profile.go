package sender

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// EnvProfile names the key profile when Options.Profile is empty. It is the variable the
// services read (LATCHKEY_KEY_PROFILE), so a program started in the environment of
// `LATCHKEY_KEY_PROFILE=typed make run` uses that profile with no other setting.
const EnvProfile = "LATCHKEY_KEY_PROFILE"

// profile is a key profile and the name Start knows it by: Options.Profile or EnvProfile
// as given (a built-in name or a file), or the built-in name it detected.
type profile struct {
	name string
	reg  *keyformat.Registry
}

// builtinProfiles are the built-in profiles (keyformat.ProfileNames), in that order.
var builtinProfiles = sync.OnceValues(func() ([]profile, error) {
	var ps []profile
	for _, name := range keyformat.ProfileNames() {
		reg, err := keyformat.LoadProfile(name)
		if err != nil {
			return nil, fmt.Errorf("sender: built-in profile %q: %w", name, err)
		}
		ps = append(ps, profile{name: name, reg: reg})
	}
	return ps, nil
})

// namedProfile loads the profile Options.Profile or else EnvProfile names; ok is false when
// neither names one (Start then detects it, see detectProfile).
func namedProfile(o resolved) (p profile, ok bool, err error) {
	name, from := strings.TrimSpace(o.Profile), "Options.Profile"
	if name == "" {
		name, from = strings.TrimSpace(os.Getenv(EnvProfile)), EnvProfile
	}
	if name == "" {
		return profile{}, false, nil
	}
	reg, err := keyformat.LoadProfile(name)
	if err != nil {
		return profile{}, false, fmt.Errorf("sender: the profile in %s: %w", from, err)
	}
	return profile{name: name, reg: reg}, true, nil
}

// profileOfKey is the one profile of ps whose parser takes key, found in where (named in
// errors, never the key). None: the error of a profile that knows the key's prefix (a bad
// checksum, a wrong length), else one wrapping keyformat.ErrUnknownPrefix; more than one:
// an error naming them.
func profileOfKey(key, where string, ps []profile) (profile, error) {
	var (
		found  []profile
		closer error
	)
	for _, p := range ps {
		_, err := p.reg.Parse(key)
		switch {
		case err == nil:
			found = append(found, p)
		case closer == nil && !errors.Is(err, keyformat.ErrUnknownPrefix):
			closer = fmt.Errorf("sender: the key in %s is not a key of profile %q: %w", where, p.name, err)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return profile{}, fmt.Errorf("sender: the key in %s is a key of profiles %s: set Options.Profile or %s to the server's", where, quoteNames(found), EnvProfile)
	case closer != nil:
		return profile{}, closer
	}
	return profile{}, fmt.Errorf("sender: the key in %s is a key of no built-in profile (%s): %w; for a profile file of the server's own, set Options.Profile or %s to its path",
		where, strings.Join(keyformat.ProfileNames(), ", "), keyformat.ErrUnknownPrefix, EnvProfile)
}

// profileOfEnv finds the profile whose key variable is set (not blank): ok is false when
// none is. Two variables set is an error (the program must name the profile); profiles
// sharing one variable are told apart by its key.
func profileOfEnv(ps []profile) (p profile, key, env string, ok bool, err error) {
	var (
		vars  []string
		named = map[string][]profile{}
	)
	for _, p := range ps {
		v := p.reg.SDK().APIKeyEnv
		if strings.TrimSpace(os.Getenv(v)) == "" {
			continue
		}
		if named[v] == nil {
			vars = append(vars, v)
		}
		named[v] = append(named[v], p)
	}
	switch len(vars) {
	case 0:
		return profile{}, "", "", false, nil
	case 1:
	default:
		return profile{}, "", "", false, fmt.Errorf("sender: %s are set together, the key variables of different profiles: set Options.Profile or %s to say which profile the server runs, or unset all but one",
			strings.Join(vars, " and "), EnvProfile)
	}
	env = vars[0]
	key = strings.TrimSpace(os.Getenv(env))
	if len(named[env]) == 1 {
		return named[env][0], key, env, true, nil
	}
	p, err = profileOfKey(key, env, named[env])
	return p, key, env, err == nil, err
}

// anonymousProfiles are those of ps with an anonymous type: where a key file can be.
func anonymousProfiles(ps []profile) []profile {
	var out []profile
	for _, p := range ps {
		if _, ok := p.reg.Anonymous(); ok {
			out = append(out, p)
		}
	}
	return out
}

// quoteNames writes the profiles' names as `"a" and "b"` or `"a", "b" and "c"`.
func quoteNames(ps []profile) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = fmt.Sprintf("%q", p.name)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}
