package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// serveNet starts the probe server on a loopback port with the given limits.
func serveNet(t *testing.T, limits ConnLimits) string {
	t.Helper()
	g, err := NewGRPC(GRPCConfig{Name: "probe", Addr: "127.0.0.1:0", Logger: zap.NewNop(), Conn: limits})
	require.NoError(t, err)
	g.Server.RegisterService(&probeDesc, probe{})
	lis, err := g.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return lis.Addr().String()
}

const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// emptySettings is an HTTP/2 SETTINGS frame with no settings.
var emptySettings = []byte{0, 0, 0, 0x4, 0, 0, 0, 0, 0}

const (
	frameSettings = 0x4
	framePing     = 0x6
	frameGoAway   = 0x7
)

// dial opens a raw TCP connection; with handshake it also sends the HTTP/2 client preface
// and settings, as a gRPC client would, and nothing after.
func dial(t *testing.T, addr string, handshake bool) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	if handshake {
		_, err = c.Write(append([]byte(clientPreface), emptySettings...))
		require.NoError(t, err)
	}
	return c
}

// readUntilClosed reads c until the server closes it and returns the types of the HTTP/2
// frames it sent; it fails the test if c is still open after within. A live client
// answers the server's pings; a vanished one (live false) does not.
func readUntilClosed(t *testing.T, c net.Conn, within time.Duration, live bool) []byte {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(within)))
	var types []byte
	head := make([]byte, 9)
	for {
		_, err := io.ReadFull(c, head)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server still holds the connection after %s", within)
		if err != nil {
			return types
		}
		payload := make([]byte, int(binary.BigEndian.Uint32(append([]byte{0}, head[:3]...))))
		if _, err := io.ReadFull(c, payload); err != nil {
			return types
		}
		types = append(types, head[3])
		if live && head[3] == framePing && head[4]&0x1 == 0 {
			ack := append([]byte{0, 0, 8, framePing, 0x1, 0, 0, 0, 0}, payload...)
			_, _ = c.Write(ack)
		}
	}
}

func TestSilentConnectionIsClosedAfterHandshakeTimeout(t *testing.T) {
	addr := serveNet(t, ConnLimits{HandshakeTimeout: 200 * time.Millisecond})
	start := time.Now()
	readUntilClosed(t, dial(t, addr, false), 5*time.Second, false)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
}

func TestIdleConnectionIsClosed(t *testing.T) {
	addr := serveNet(t, ConnLimits{IdleTimeout: 300 * time.Millisecond})
	types := readUntilClosed(t, dial(t, addr, true), 5*time.Second, true)
	require.Contains(t, types, byte(frameGoAway), "a GOAWAY tells the client to reconnect when it needs to")
}

func TestHalfOpenConnectionIsClosedWhenPingsGoUnanswered(t *testing.T) {
	// The peer has finished the handshake and then vanished: it never answers again.
	addr := serveNet(t, ConnLimits{KeepaliveTime: time.Second, KeepaliveTimeout: 200 * time.Millisecond})
	types := readUntilClosed(t, dial(t, addr, true), 5*time.Second, false)
	require.Contains(t, types, byte(framePing))
}

func TestConnectionCap(t *testing.T) {
	addr := serveNet(t, ConnLimits{MaxConns: 2})
	served := func(c net.Conn) bool {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
		head := make([]byte, 9)
		_, err := io.ReadFull(c, head)
		return err == nil && head[3] == frameSettings
	}
	first, second := dial(t, addr, true), dial(t, addr, true)
	require.True(t, served(first))
	require.True(t, served(second))

	require.Empty(t, readUntilClosed(t, dial(t, addr, true), 5*time.Second, false), "a third connection is closed unserved")

	require.NoError(t, first.Close())
	deadline := time.Now().Add(5 * time.Second)
	for !served(dial(t, addr, true)) {
		require.True(t, time.Now().Before(deadline), "a slot freed by a closed connection is never reused")
	}
}

// garbageCodec frames bytes that are no protobuf message as a gRPC request.
type garbageCodec struct{}

func (garbageCodec) Marshal(any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer{0xff, 0xff, 0xff, 0xff}}, nil
}
func (garbageCodec) Unmarshal(mem.BufferSlice, any) error { return errors.New("not used") }
func (garbageCodec) Name() string                         { return "proto" }

func TestMalformedRequestIsInvalidArgument(t *testing.T) {
	conn, err := grpc.NewClient(serveNet(t, ConnLimits{}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx := context.Background()
	garbage := grpc.ForceCodecV2(garbageCodec{})

	for _, method := range []string{"/test.Probe/Who", healthpb.Health_Check_FullMethodName} {
		err := conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{}, garbage)
		require.Equal(t, apierr.InvalidArgument, apierr.FromError(err).Code, "%s: %v", method, err)
	}

	// A server stream reads its request through RecvMsg: the same answer.
	desc := &grpc.StreamDesc{ServerStreams: true}
	s, err := conn.NewStream(ctx, desc, healthpb.Health_Watch_FullMethodName, garbage)
	require.NoError(t, err)
	require.NoError(t, s.SendMsg(&emptypb.Empty{}))
	require.NoError(t, s.CloseSend())
	err = s.RecvMsg(&healthpb.HealthCheckResponse{})
	require.Equal(t, apierr.InvalidArgument, apierr.FromError(err).Code, "%v", err)

	// A well-formed call on the same connection still works.
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
}
