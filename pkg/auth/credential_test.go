package auth

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
)

func TestCheckToken(t *testing.T) {
	for _, tok := range []string{"a", "lk_ing_0123abc", "lks_" + strings.Repeat("Z", 43), strings.Repeat("~", MaxTokenLen), "!#$%&'*+-./:;<=>?@[]^_`{|}"} {
		require.Nil(t, CheckToken(tok), "%q", tok)
	}
	for _, tok := range []string{"", strings.Repeat("k", MaxTokenLen+1), "a b", "a\tb", "a\x00b", "a\x7fb", "caf\u00e9", "\xff\xfe", "a\nb"} {
		require.Equal(t, ErrMalformed, CheckToken(tok), "%q", tok)
	}
}

func TestCheckOperatorToken(t *testing.T) {
	require.NoError(t, CheckOperatorToken(strings.Repeat("o", MinOperatorTokenLen)))
	require.NoError(t, CheckOperatorToken(strings.Repeat("o", MaxTokenLen)))
	for _, tok := range []string{"", strings.Repeat("o", MinOperatorTokenLen-1), strings.Repeat("o", MaxTokenLen+1), "operator token with spaces", "operator-token-\u00e9\u00e9\u00e9"} {
		require.Error(t, CheckOperatorToken(tok), "%q", tok)
	}
}

func TestPresentedKey(t *testing.T) {
	long := strings.Repeat("k", MaxTokenLen+1)
	cases := []struct {
		authorization, apiKey string
		want                  string
		err                   *apierr.Error
	}{
		{"Bearer good", "", "good", nil},
		{"bearer good", "", "good", nil},
		{"BEARER good", "", "good", nil},
		{"  Bearer    good  ", "", "good", nil},
		{"", "good", "good", nil},
		{"", " good ", "good", nil},
		{"Basic Zm9vOmJhcg==", "good", "good", nil},
		{"Bearer good", "other", "good", nil},
		{"", "", "", ErrNoAPIKey},
		{"", "  ", "", ErrNoAPIKey},
		{"Bearer", "", "", ErrEmptyBearer},
		{"Bearer   ", "good", "", ErrEmptyBearer},
		{"Basic Zm9vOmJhcg==", "", "", ErrNotBearer},
		{"good", "", "", ErrNotBearer},
		{"Bearer " + long, "", "", ErrMalformed},
		{"", long, "", ErrMalformed},
		{"Bearer a b", "", "", ErrMalformed},
		{"Bearer caf\u00e9", "", "", ErrMalformed},
	}
	for _, c := range cases {
		got, err := PresentedKey(c.authorization, c.apiKey)
		require.Equal(t, c.err, err, "%q / %q", c.authorization, c.apiKey)
		require.Equal(t, c.want, got, "%q / %q", c.authorization, c.apiKey)
	}
	// The gateway's hot path: extraction allocates nothing.
	require.Zero(t, testing.AllocsPerRun(100, func() { _, _ = PresentedKey("Bearer lk_ing_0123456789abcdef", "") }))
}

func TestBearerToken(t *testing.T) {
	ctx := func(values ...string) context.Context {
		md := metadata.MD{}
		for _, v := range values {
			md.Append("authorization", v)
		}
		return metadata.NewIncomingContext(context.Background(), md)
	}
	require.Equal(t, "tok", BearerToken(ctx("Bearer tok")))
	require.Equal(t, "tok", BearerToken(ctx("bearer  tok ")))
	require.Equal(t, "tok", BearerToken(ctx("Basic x", "Bearer tok")))
	require.Equal(t, "a b", BearerToken(ctx("Bearer a b")), "the bounds are the authenticator's to check")
	for _, v := range []string{"Bearer", "Bearer  ", "Basic Zm9v", "tok"} {
		require.Empty(t, BearerToken(ctx(v)), "%q", v)
	}
	require.Empty(t, BearerToken(context.Background()))
}

func BenchmarkPresentedKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PresentedKey("Bearer lk_ing_01HZX3V5K8M2N4P6Q8R0S2T4V6_abcdef", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// A call to another service made while handling a REST call carries the bridge's outgoing
// metadata (the caller's authorization, its request id): the service's own bearer must
// replace the caller's, or the callee authenticates the caller instead (and limits it).
func TestOutgoingReplacesTheCallersBearer(t *testing.T) {
	bridge := metadata.AppendToOutgoingContext(context.Background(),
		"authorization", "Bearer lks_the_callers_session", requestid.MetadataKey, "req-1", "x-other", "kept")
	ctx, cancel := Outgoing(requestid.With(bridge, "req-1", true), OperatorToken("operator-token-0123"))
	defer cancel()
	md, _ := metadata.FromOutgoingContext(ctx)
	require.Equal(t, []string{"Bearer operator-token-0123"}, md.Get("authorization"))
	require.Equal(t, []string{"req-1"}, md.Get(requestid.MetadataKey))
	require.Equal(t, []string{"kept"}, md.Get("x-other"))

	md, _ = metadata.FromOutgoingContext(OutgoingBearer(context.Background(), "tok"))
	require.Equal(t, []string{"Bearer tok"}, md.Get("authorization"))
}
