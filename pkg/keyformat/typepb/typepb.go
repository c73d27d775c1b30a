// Package typepb converts key types between their configuration form (keyformat.Type) and
// their wire form (keysv1.KeyType, served by ListKeyTypes). It is the only place that does:
// the keys service renders its registry with ToProto and every gateway rebuilds the same
// registry with FromProto, so a gateway parses, scopes and rate-limits keys exactly as the
// keys service issues them (docs/keys.md, "Key types").
package typepb

import (
	"time"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

// ToProto renders t for the wire. Durations travel in whole int32 seconds; keyformat.NewRegistry
// refuses types whose durations are not whole seconds or exceed MaxDuration, so nothing a
// registry holds is cut.
func ToProto(t *keyformat.Type) *keysv1.KeyType {
	return &keysv1.KeyType{
		Name:                 t.Name,
		Prefix:               t.Prefix,
		Capabilities:         clone(t.Capabilities),
		Scope:                string(t.Scope),
		RotationGraceSeconds: seconds(t.RotationGrace),
		RequiresPlan:         t.RequiresPlan,
		Browser:              t.Browser,
		Encoding:             string(t.Encoding),
		RandomBytes:          int32(t.RandomBytes), //nolint:gosec // NewRegistry bounds it to 8..64
		Checksum:             t.Checksum,
		LegacyPrefixes:       clone(t.LegacyPrefixes),
		RateLimitPerSecond:   t.RateLimit.PerSecond,
		RateLimitBurst:       int32(t.RateLimit.Burst), //nolint:gosec // NewRegistry bounds it to int32
		DataTtlSeconds:       seconds(t.DataTTL),
		Anonymous:            t.Anonymous,
		Mintable:             t.Mintable,
		ClaimGraceSeconds:    seconds(t.ClaimGrace),
		SessionWindowSeconds: seconds(t.SessionWindow),
		Servers:              t.Servers,
		PerProject:           t.PerProject,
		ReplaceOnRevoke:      t.ReplaceOnRevoke,
		OnExposed:            string(t.OnExposed),
	}
}

// FromProto rebuilds the type p describes. It does not validate: pass the result to
// keyformat.NewRegistry, which does.
func FromProto(p *keysv1.KeyType) keyformat.Type {
	return keyformat.Type{
		Name:            p.GetName(),
		Prefix:          p.GetPrefix(),
		Encoding:        keyformat.Encoding(p.GetEncoding()),
		RandomBytes:     int(p.GetRandomBytes()),
		Checksum:        p.GetChecksum(),
		Capabilities:    clone(p.GetCapabilities()),
		Scope:           keyformat.Scope(p.GetScope()),
		RotationGrace:   duration(p.GetRotationGraceSeconds()),
		DataTTL:         duration(p.GetDataTtlSeconds()),
		Browser:         p.GetBrowser(),
		RequiresPlan:    p.GetRequiresPlan(),
		RateLimit:       keyformat.RateLimit{PerSecond: p.GetRateLimitPerSecond(), Burst: int(p.GetRateLimitBurst())},
		LegacyPrefixes:  clone(p.GetLegacyPrefixes()),
		Anonymous:       p.GetAnonymous(),
		ClaimGrace:      duration(p.GetClaimGraceSeconds()),
		Mintable:        p.GetMintable(),
		SessionWindow:   duration(p.GetSessionWindowSeconds()),
		Servers:         p.GetServers(),
		PerProject:      p.GetPerProject(),
		ReplaceOnRevoke: p.GetReplaceOnRevoke(),
		OnExposed:       keyformat.OnExposed(p.GetOnExposed()),
	}
}

// ToProtoList renders every type of reg, in its configured order.
func ToProtoList(reg *keyformat.Registry) []*keysv1.KeyType {
	types := reg.Types()
	out := make([]*keysv1.KeyType, len(types))
	for i := range types {
		out[i] = ToProto(&types[i])
	}
	return out
}

// FromProtoList rebuilds a validated registry from the wire form; the error names every
// type that breaks a rule (keyformat.NewRegistry).
func FromProtoList(ps []*keysv1.KeyType) (*keyformat.Registry, error) {
	types := make([]keyformat.Type, len(ps))
	for i, p := range ps {
		types[i] = FromProto(p)
	}
	return keyformat.NewRegistry(types)
}

// GatewayErrorsToProto renders a profile's gateway error bodies for the wire; nil for
// Latchkey's own envelope.
func GatewayErrorsToProto(g keyformat.GatewayErrors) *keysv1.GatewayErrors {
	if g.Shape == "" && len(g.Messages) == 0 {
		return nil
	}
	return &keysv1.GatewayErrors{Shape: g.Shape, Messages: g.Messages}
}

// GatewayErrorsFromProto is the inverse of GatewayErrorsToProto.
func GatewayErrorsFromProto(p *keysv1.GatewayErrors) keyformat.GatewayErrors {
	if p == nil {
		return keyformat.GatewayErrors{}
	}
	return keyformat.GatewayErrors{Shape: p.GetShape(), Messages: p.GetMessages()}
}

// seconds is d in whole seconds; keyformat.NewRegistry keeps every duration within
// keyformat.MaxDuration, so it fits int32.
func seconds(d keyformat.Duration) int32 { return int32(d.Duration / time.Second) } //nolint:gosec // bounded by MaxDuration

func duration(s int32) keyformat.Duration {
	return keyformat.Duration{Duration: time.Duration(s) * time.Second}
}

// clone keeps the two forms from sharing a backing array.
func clone(s []string) []string {
	if s == nil {
		return nil
	}
	return append(make([]string, 0, len(s)), s...)
}
