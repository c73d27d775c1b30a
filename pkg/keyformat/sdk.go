package keyformat

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
)

// The sender SDK's settings of Latchkey's own scheme: those of the default profile and of
// every profile that names none.
const (
	// DefaultAPIKeyEnv is the environment variable a sender reads its key from.
	DefaultAPIKeyEnv = "LATCHKEY_API_KEY" //nolint:gosec // the name of a variable, not a credential
	// DefaultAnonKeyFile is where a sender keeps its anonymous key, relative to the
	// project directory.
	DefaultAnonKeyFile = ".latchkey/anon_key"
)

// envNameRE is what SDK.APIKeyEnv must match: a portable environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// SDK is what a profile tells the sender SDKs (pkg/sender) of its scheme: where a program
// finds its key. It is set per profile, not per type, in the profile file's "sdk" object:
//
//	"sdk": {"api_key_env": "GLASSTRACE_API_KEY", "anon_key_file": ".glasstrace/anon_key"}
//
// Both fields may be left out; Registry.SDK fills in Latchkey's own (DefaultAPIKeyEnv,
// DefaultAnonKeyFile).
type SDK struct {
	// APIKeyEnv names the environment variable a sender reads its key from when the program
	// passes none; it matches [A-Z_][A-Z0-9_]*.
	APIKeyEnv string `json:"api_key_env,omitempty"`
	// AnonKeyFile is where a sender with no key keeps the anonymous key it minted: a clean
	// relative path with '/' separators and no "..", taken from the project directory
	// (".glasstrace/anon_key"). Only a profile with an anonymous type (Registry.Anonymous)
	// may set it, and for such a profile Registry.SDK never leaves it empty.
	AnonKeyFile string `json:"anon_key_file,omitempty"`
}

// validate reports every rule s breaks; anonymous tells whether the profile has an
// anonymous type.
func (s SDK) validate(anonymous bool) error {
	var errs []error
	if s.APIKeyEnv != "" && !envNameRE.MatchString(s.APIKeyEnv) {
		errs = append(errs, fmt.Errorf("keyformat: sdk: api_key_env %q must match %s", s.APIKeyEnv, envNameRE))
	}
	if f := s.AnonKeyFile; f != "" {
		switch {
		case !anonymous:
			errs = append(errs, errors.New("keyformat: sdk: anon_key_file applies only to a profile with an anonymous type"))
		case path.IsAbs(f) || strings.Contains(f, `\`) || (len(f) >= 2 && f[1] == ':'):
			errs = append(errs, fmt.Errorf("keyformat: sdk: anon_key_file %q must be a relative path with '/' separators", f))
		case f == "." || path.Clean(f) != f:
			errs = append(errs, fmt.Errorf("keyformat: sdk: anon_key_file %q must be a clean path to a file (as %q)", f, DefaultAnonKeyFile))
		case f == ".." || strings.HasPrefix(f, "../"):
			errs = append(errs, fmt.Errorf("keyformat: sdk: anon_key_file %q must stay inside the project directory (no \"..\")", f))
		}
	}
	return errors.Join(errs...)
}

// SDK returns the sender settings of the profile, with Latchkey's own filled in where the
// profile names none: DefaultAPIKeyEnv, and DefaultAnonKeyFile when the profile has an
// anonymous type (AnonKeyFile stays empty when it has none: there is nothing to keep).
func (r *Registry) SDK() SDK {
	s := r.sdk
	if s.APIKeyEnv == "" {
		s.APIKeyEnv = DefaultAPIKeyEnv
	}
	if s.AnonKeyFile == "" && r.anonymous != nil {
		s.AnonKeyFile = DefaultAnonKeyFile
	}
	return s
}
