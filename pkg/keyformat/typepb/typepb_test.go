package typepb

import (
	mathrand "math/rand"
	"math/rand/v2"
	"reflect"
	"testing"
	"testing/quick"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

// wire sends p through its binary encoding, as ListKeyTypes does.
func wire(t *testing.T, p *keysv1.KeyType) *keysv1.KeyType {
	t.Helper()
	b, err := proto.Marshal(p)
	require.NoError(t, err)
	var out keysv1.KeyType
	require.NoError(t, proto.Unmarshal(b, &out))
	return &out
}

// representable makes a random Type one the wire can carry: whole 32-bit seconds, 32-bit
// counts, and no empty-but-not-nil lists (the wire cannot tell them from none).
func representable(typ *keyformat.Type) {
	for _, d := range []*keyformat.Duration{&typ.RotationGrace, &typ.DataTTL, &typ.ClaimGrace, &typ.SessionWindow} {
		d.Duration = time.Duration(int32(d.Duration/time.Second)) * time.Second //nolint:gosec // the point is to cut it
	}
	typ.RandomBytes = int(int32(typ.RandomBytes)) //nolint:gosec // the point is to cut it
	typ.RateLimit.Burst = int(int32(typ.RateLimit.Burst))
	if len(typ.Capabilities) == 0 {
		typ.Capabilities = nil
	}
	if len(typ.LegacyPrefixes) == 0 {
		typ.LegacyPrefixes = nil
	}
}

// TestTypeRoundTrip: every field of a key type, random values included, comes back from
// the wire as it went. A field added to keyformat.Type and forgotten here fails it.
func TestTypeRoundTrip(t *testing.T) {
	r := mathrand.New(mathrand.NewSource(1)) //nolint:gosec // test data; quick.Value wants math/rand
	for i := range 2000 {
		v, ok := quick.Value(reflect.TypeFor[keyformat.Type](), r)
		require.True(t, ok)
		typ := v.Interface().(keyformat.Type)
		representable(&typ)
		got := FromProto(wire(t, ToProto(&typ)))
		require.Equal(t, typ, got, "type %d", i)
	}
}

// randomize sets every field of m, whatever fields the proto has, to a random value in
// the range a keyformat.Type can hold.
func randomize(r *rand.Rand, m protoreflect.Message) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.IsList() {
			l := m.Mutable(fd).List()
			for range r.IntN(4) {
				l.Append(protoreflect.ValueOfString(randString(r)))
			}
			continue
		}
		var v protoreflect.Value
		switch fd.Kind() {
		case protoreflect.StringKind:
			v = protoreflect.ValueOfString(randString(r))
		case protoreflect.BoolKind:
			v = protoreflect.ValueOfBool(r.IntN(2) == 1)
		case protoreflect.Int32Kind:
			v = protoreflect.ValueOfInt32(r.Int32())
		case protoreflect.DoubleKind:
			v = protoreflect.ValueOfFloat64(r.NormFloat64() * 1e6)
		default:
			panic("typepb test: no generator for " + fd.Kind().String() + "; teach randomize")
		}
		m.Set(fd, v)
	}
}

func randString(r *rand.Rand) string {
	b := make([]byte, r.IntN(12))
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// TestProtoRoundTrip: every field of the wire form, random values included, survives the
// trip through keyformat.Type. A field added to the proto and forgotten here fails it.
func TestProtoRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 2000 {
		p := &keysv1.KeyType{}
		randomize(r, p.ProtoReflect())
		typ := FromProto(wire(t, p))
		got := wire(t, ToProto(&typ))
		require.True(t, proto.Equal(p, got), "key type %d:\n sent %v\n got  %v", i, p, got)
	}
}

// TestProfilesRoundTrip: every shipped profile, as a gateway rebuilds it from the keys
// service's answer, is the registry the keys service holds.
func TestProfilesRoundTrip(t *testing.T) {
	for _, name := range keyformat.ProfileNames() {
		t.Run(name, func(t *testing.T) {
			reg, err := keyformat.LoadProfile(name)
			require.NoError(t, err)
			ps := ToProtoList(reg)
			for i := range ps {
				ps[i] = wire(t, ps[i])
			}
			got, err := FromProtoList(ps)
			require.NoError(t, err)
			require.Equal(t, reg.Types(), got.Types())
		})
	}
}

// TestGatewayErrorsRoundTrip: a profile's gateway error bodies reach the gateways as they
// are written; Latchkey's own envelope travels as nothing.
func TestGatewayErrorsRoundTrip(t *testing.T) {
	for _, name := range keyformat.ProfileNames() {
		reg, err := keyformat.LoadProfile(name)
		require.NoError(t, err)
		g := reg.GatewayErrors()
		p := GatewayErrorsToProto(g)
		if g.Shape == "" && len(g.Messages) == 0 {
			require.Nil(t, p, name)
			continue
		}
		require.Equal(t, g, GatewayErrorsFromProto(wireErrors(t, p)), name)
	}
}

// wireErrors sends p through its binary encoding, as ListKeyTypes does.
func wireErrors(t *testing.T, p *keysv1.GatewayErrors) *keysv1.GatewayErrors {
	t.Helper()
	b, err := proto.Marshal(&keysv1.ListKeyTypesResponse{GatewayErrors: p})
	require.NoError(t, err)
	var out keysv1.ListKeyTypesResponse
	require.NoError(t, proto.Unmarshal(b, &out))
	return out.GetGatewayErrors()
}
