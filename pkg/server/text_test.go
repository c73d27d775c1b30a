package server

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
)

func TestBadTextFindsEveryPosition(t *testing.T) {
	cases := []struct {
		req  *keysv1.UpdateKeyRequest
		want string
	}{
		{&keysv1.UpdateKeyRequest{Key: &keysv1.Key{Id: "key_\x00"}}, "key.id"},
		{&keysv1.UpdateKeyRequest{Key: &keysv1.Key{Name: "a\xffb"}}, "key.name"},
		{&keysv1.UpdateKeyRequest{Key: &keysv1.Key{Capabilities: []string{"ingest", "\x00"}}}, "key.capabilities[1]"},
		{&keysv1.UpdateKeyRequest{Key: &keysv1.Key{Metadata: map[string]string{"team": "w\x00b"}}}, "key.metadata (a value)"},
		{&keysv1.UpdateKeyRequest{Key: &keysv1.Key{Metadata: map[string]string{"\xed\xa0\x80": "v"}}}, "key.metadata (a key)"},
		{&keysv1.UpdateKeyRequest{UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name", "\x00"}}}, "update_mask.paths[1]"},
		// Text that is fine: tabs, newlines, other scripts, emoji, U+FFFD itself.
		{&keysv1.UpdateKeyRequest{Key: &keysv1.Key{Name: "tab\tnew\nline ünï 鍵 🔑 \uFFFD", Metadata: map[string]string{"k\t": "v\r\n"}}}, ""},
	}
	for _, c := range cases {
		require.Equal(t, c.want, badText(c.req.ProtoReflect(), ""), "%v", c.req)
	}
	// Only Latchkey's own APIs: an OTLP log body may hold a NUL.
	require.False(t, checked(structpb.NewStringValue("\x00")))
	require.True(t, checked(&keysv1.GetKeyRequest{}))
}

type textKeys struct {
	keysv1.UnimplementedKeysServiceServer
	reached chan string
}

func (k textKeys) GetKey(_ context.Context, req *keysv1.GetKeyRequest) (*keysv1.GetKeyResponse, error) {
	k.reached <- req.GetId()
	return &keysv1.GetKeyResponse{}, nil
}

// Bad text is refused before a handler runs: by the server's chain for a network client,
// and on the bridge's in-process connection before marshalling (where invalid UTF-8 would
// otherwise be an INTERNAL marshalling error).
func TestBadTextNeverReachesHandlers(t *testing.T) {
	g, err := NewGRPC(GRPCConfig{Name: "text", Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	reached := make(chan string, 10)
	keysv1.RegisterKeysServiceServer(g.Server, textKeys{reached: reached})
	lis, err := g.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })

	remote, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = remote.Close() })

	_, err = keysv1.NewKeysServiceClient(remote).GetKey(ctx, &keysv1.GetKeyRequest{Id: "key_\x00"})
	e := apierr.FromError(err)
	require.Equal(t, apierr.InvalidArgument, e.Code, "%v", err)
	require.Contains(t, e.Message, "id must be valid UTF-8 text")

	local := keysv1.NewKeysServiceClient(g.LocalConn())
	for _, id := range []string{"key_\xff", "key_\x00"} {
		_, err = local.GetKey(ctx, &keysv1.GetKeyRequest{Id: id})
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		require.Equal(t, apierr.InvalidArgument, apierr.FromError(err).Code)
	}

	_, err = local.GetKey(ctx, &keysv1.GetKeyRequest{Id: "key_ok\tfine"})
	require.NoError(t, err)
	require.Equal(t, "key_ok\tfine", <-reached)
	require.Empty(t, reached, "no refused call reached the handler")
}
