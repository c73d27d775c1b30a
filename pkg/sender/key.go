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
	// Profile is the key profile the sender uses: Options.Profile or LATCHKEY_KEY_PROFILE
	// as given, else the built-in profile Start detected (see Options.Profile).
	Profile string
	// EnvVar is the environment variable the profile names for the key (whichever source
	// the key came from).
	EnvVar string
	// File is the anonymous key file's path; empty under a profile without anonymous type.
	File string
}

// ingestCapability is what a key must carry for the gateway to take data with it.
const ingestCapability = "ingest"

// resolveKey finds the profile and the key (see Options.Profile for the order) and returns
// them with the key's description. An explicit key that does not parse is an error, never
// a reason to fall back to the next source.
func resolveKey(ctx context.Context, o resolved, mint minter) (string, KeyInfo, profile, error) {
	p, named, err := namedProfile(o)
	if err != nil {
		return "", KeyInfo{}, profile{}, err
	}
	if named {
		key, info, err := keyOfProfile(ctx, p, o, mint)
		return key, info, p, err
	}
	builtins, err := builtinProfiles()
	if err != nil {
		return "", KeyInfo{}, profile{}, err
	}
	if key := strings.TrimSpace(o.APIKey); key != "" {
		p, err := profileOfKey(key, "Options.APIKey", builtins)
		if err != nil {
			return "", KeyInfo{}, profile{}, err
		}
		key, info, err := useKey(p, o, key, SourceOption, "Options.APIKey")
		return key, info, p, err
	}
	p, key, env, ok, err := profileOfEnv(builtins)
	if err != nil {
		return "", KeyInfo{}, profile{}, err
	}
	if ok {
		key, info, err := useKey(p, o, key, SourceEnv, env)
		return key, info, p, err
	}
	return anonymousKey(ctx, o, anonymousProfiles(builtins), false, mint)
}

// keyOfProfile finds the key of a named profile: the option, the profile's variable, else
// its anonymous key file (minting into it when absent).
func keyOfProfile(ctx context.Context, p profile, o resolved, mint minter) (string, KeyInfo, error) {
	env := p.reg.SDK().APIKeyEnv
	if key := strings.TrimSpace(o.APIKey); key != "" {
		return useKey(p, o, key, SourceOption, "Options.APIKey")
	}
	if key := strings.TrimSpace(os.Getenv(env)); key != "" {
		return useKey(p, o, key, SourceEnv, env)
	}
	// Another scheme's variable set beside a named profile is a key meant for this program
	// that it would not use: anonymous mode instead would send the data where no one looks.
	if builtins, err := builtinProfiles(); err == nil {
		for _, b := range builtins {
			if other := b.reg.SDK().APIKeyEnv; other != env && strings.TrimSpace(os.Getenv(other)) != "" {
				return "", KeyInfo{}, fmt.Errorf("sender: %s is set, but profile %q reads its key from %s: set %s (or Options.APIKey), or name profile %q",
					other, p.name, env, env, b.name)
			}
		}
	}
	if _, ok := p.reg.Anonymous(); !ok {
		return "", KeyInfo{}, fmt.Errorf("sender: no key: set %s or Options.APIKey (profile %q has no anonymous keys)", env, p.name)
	}
	key, info, _, err := anonymousKey(ctx, o, []profile{p}, true, mint)
	return key, info, err
}

// keyInfo describes the settings of profile p for the project directory dir.
func keyInfo(p profile, dir string) KeyInfo {
	sdk := p.reg.SDK()
	info := KeyInfo{Profile: p.name, EnvVar: sdk.APIKeyEnv}
	if sdk.AnonKeyFile != "" {
		info.File = anonKeyPath(dir, sdk.AnonKeyFile)
	}
	return info
}

// useKey checks key against profile p and describes it: it must parse, be able to ingest
// and not be a browser session key. where names the source in errors, never the key.
func useKey(p profile, o resolved, key string, src KeySource, where string) (string, KeyInfo, error) {
	k, err := p.reg.Parse(key)
	if err != nil {
		// The error names the rule the key breaks, never the key.
		return "", KeyInfo{}, fmt.Errorf("sender: the key in %s is not a key of profile %q: %w", where, p.name, err)
	}
	if k.Type.BrowserOnly() {
		return "", KeyInfo{}, fmt.Errorf("sender: the key in %s (%s) is a browser session key: session keys are for web pages, which send an allowed Origin, and expire within %s; the gateway refuses one from a server program (403 origin_not_allowed), which needs an ingest key",
			where, keyformat.DisplayPrefix(k), shortDuration(k.Type.SessionWindow.Duration))
	}
	if !slices.Contains(k.Type.Capabilities, ingestCapability) {
		return "", KeyInfo{}, fmt.Errorf("sender: the key in %s (%s) is a %q key, which cannot send data; use an ingest key", where, keyformat.DisplayPrefix(k), k.Type.Name)
	}
	info := keyInfo(p, o.Dir)
	info.Source, info.Type, info.Anonymous, info.DisplayPrefix = src, k.Type.Name, k.Type.Anonymous, keyformat.DisplayPrefix(k)
	return key, info, nil
}
