package sender

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// KeySource says where a sender's key came from.
type KeySource string

// The sources of a key, in the order Start looks.
const (
	// SourceOption: Options.APIKey.
	SourceOption KeySource = "option"
	// SourceEnv: the profile's environment variable (KeyInfo.EnvVar).
	SourceEnv KeySource = "env"
	// SourceFile: the anonymous key file, as an earlier start left it.
	SourceFile KeySource = "file"
	// SourceMinted: minted by this start with POST /v1/anonymous-keys and stored in the file.
	SourceMinted KeySource = "minted"
)

// KeyInfo describes a sender's key without revealing it.
type KeyInfo struct {
	// Source is where the key came from.
	Source KeySource
	// Type is the key's type in the profile ("ingest", "anonymous", …).
	Type string
	// Anonymous reports a key of the profile's anonymous type: its data is kept for the
	// type's data TTL only, until the key is claimed.
	Anonymous bool
	// DisplayPrefix is the key's prefix and first 8 body characters, as listings show it.
	DisplayPrefix string
	// EnvVar is the environment variable the profile names for the key (whichever source
	// the key came from).
	EnvVar string
	// File is the anonymous key file's path; empty under a profile without anonymous type.
	File string
}

// ingestCapability is what a key must carry for the gateway to take data with it.
const ingestCapability = "ingest"

// resolveKey finds the key: the option, the profile's variable, then the anonymous key file
// (minting into it when absent). An explicit key that does not parse is an error, never a
// reason to fall back to the next source.
func resolveKey(ctx context.Context, reg *keyformat.Registry, o resolved, mint minter) (string, KeyInfo, error) {
	sdk := reg.SDK()
	info := KeyInfo{EnvVar: sdk.APIKeyEnv}
	if sdk.AnonKeyFile != "" {
		info.File = anonKeyPath(o.Dir, sdk.AnonKeyFile)
	}
	use := func(key string, src KeySource, where string) (string, KeyInfo, error) {
		k, err := reg.Parse(key)
		if err != nil {
			// The error names the rule the key breaks, never the key.
			return "", KeyInfo{}, fmt.Errorf("sender: the key in %s is not a key of profile %q: %w", where, profileName(o.Profile), err)
		}
		if !slices.Contains(k.Type.Capabilities, ingestCapability) {
			return "", KeyInfo{}, fmt.Errorf("sender: the key in %s (%s) is a %q key, which cannot send data; use an ingest key", where, keyformat.DisplayPrefix(k), k.Type.Name)
		}
		info.Source, info.Type, info.Anonymous, info.DisplayPrefix = src, k.Type.Name, k.Type.Anonymous, keyformat.DisplayPrefix(k)
		return key, info, nil
	}
	if key := strings.TrimSpace(o.APIKey); key != "" {
		return use(key, SourceOption, "Options.APIKey")
	}
	if key := strings.TrimSpace(os.Getenv(sdk.APIKeyEnv)); key != "" {
		return use(key, SourceEnv, sdk.APIKeyEnv)
	}
	if _, ok := reg.Anonymous(); !ok {
		return "", KeyInfo{}, fmt.Errorf("sender: no key: set %s or Options.APIKey (profile %q has no anonymous keys)", sdk.APIKeyEnv, profileName(o.Profile))
	}
	key, minted, err := anonymousKey(ctx, reg, info.File, mint)
	if err != nil {
		return "", KeyInfo{}, err
	}
	src := SourceFile
	if minted {
		src = SourceMinted
	}
	return use(key, src, info.File)
}

func profileName(p string) string {
	if p == "" {
		return keyformat.DefaultProfile
	}
	return p
}
