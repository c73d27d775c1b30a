package keyformat

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

//go:embed profiles/*.json
var profilesFS embed.FS

// DefaultProfile is the name LoadProfile gives to Default().
const DefaultProfile = "default"

// requiredTypes are the type names the management plane looks up by name.
var requiredTypes = []string{"account", "ingest"}

// profileFile is the JSON shape of a profile.
type profileFile struct {
	// SDK is optional: a profile without it gets Latchkey's own (Registry.SDK).
	SDK SDK `json:"sdk,omitzero"`
	// GatewayErrors is optional: without it the gateways answer Latchkey's envelope.
	GatewayErrors GatewayErrors `json:"gateway_errors,omitzero"`
	Types         []Type        `json:"types"`
}

// ProfileNames lists the names LoadProfile accepts besides a file path, sorted;
// "default" is among them.
func ProfileNames() []string {
	names := []string{DefaultProfile}
	entries, _ := fs.ReadDir(profilesFS, "profiles")
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(names)
	return names
}

// LoadProfile returns the key types an operator chose: "" or "default" for
// Default(), the name of an embedded profile (ProfileNames), or else the path of a
// JSON file of the form {"sdk": {...}, "types": [...]} ("sdk", the sender SDK's
// settings, is optional: see SDK). Unknown JSON fields are errors, so a typo in a
// profile fails at start-up instead of silently changing behaviour.
//
// A profile must define a type named "account" (the management plane
// authenticates and mints management keys with it) and one named "ingest" (the
// default type of key creation and the gateway's); LoadProfile rejects a profile
// that lacks either, on top of everything NewRegistry checks.
func LoadProfile(nameOrPath string) (*Registry, error) {
	if nameOrPath == "" || nameOrPath == DefaultProfile {
		return Default(), nil
	}
	var (
		data []byte
		err  error
	)
	if isProfileName(nameOrPath) {
		data, err = profilesFS.ReadFile(path.Join("profiles", nameOrPath+".json"))
	} else {
		data, err = os.ReadFile(nameOrPath) //nolint:gosec // the operator names this file in configuration
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("keyformat: profile %q is neither a built-in profile (%s) nor a file: %w",
				nameOrPath, strings.Join(ProfileNames(), ", "), err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keyformat: reading profile %q: %w", nameOrPath, err)
	}
	r, err := parseProfile(data)
	if err != nil {
		return nil, fmt.Errorf("keyformat: profile %q: %w", nameOrPath, err)
	}
	if !isProfileName(nameOrPath) {
		remember(r) // so that Redact knows this profile's keys too
	}
	return r, nil
}

// Profile returns r as a profile file (LoadProfile reads it back), with edit applied to a
// copy of each type first: how an operator derives a profile from a built-in one, and how
// tests shorten a window (claim_grace, session_window, data_ttl) rather than wait it out.
// edit may be nil.
func (r *Registry) Profile(edit func(*Type)) ([]byte, error) {
	pf := profileFile{SDK: r.sdk, GatewayErrors: r.GatewayErrors(), Types: r.Types()}
	if edit != nil {
		for i := range pf.Types {
			edit(&pf.Types[i])
		}
	}
	return json.MarshalIndent(pf, "", "  ")
}

func isProfileName(name string) bool {
	for _, n := range ProfileNames() {
		if n == name {
			return true
		}
	}
	return false
}

func parseProfile(data []byte) (*Registry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var pf profileFile
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("decoding JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decoding JSON: trailing data after the profile object")
	}
	r, err := NewRegistry(pf.Types)
	if err != nil {
		return nil, err
	}
	var errs []error
	if err := pf.SDK.validate(r.anonymous != nil); err != nil {
		errs = append(errs, err)
	}
	r.sdk = pf.SDK
	if err := pf.GatewayErrors.validate(); err != nil {
		errs = append(errs, err)
	}
	r.gatewayErrors = pf.GatewayErrors
	for _, name := range requiredTypes {
		if _, ok := r.Lookup(name); !ok {
			errs = append(errs, fmt.Errorf("keyformat: profile must define a type named %q", name))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}
