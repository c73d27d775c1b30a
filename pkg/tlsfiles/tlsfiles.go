// Package tlsfiles is TLS from a certificate, its key and a CA bundle kept in files that a
// platform's tooling rotates (cert-manager, Vault agent, a Kubernetes Secret volume): the
// one place that decides how Latchkey's listeners and clients use them.
//
// The rules:
//   - Internal listeners (the gRPC APIs of accounts, keys and audit) serve the certificate
//     and, when a CA is given, demand a client certificate it signed (mutual TLS).
//   - Public listeners (every REST and /healthz listener, the ingest gateway's OTLP/HTTP
//     and OTLP/gRPC) serve the certificate and never ask for one: browsers and customers'
//     apps have none.
//   - Clients (gRPC between services, NATS) present the certificate and verify the server
//     against the CA, or the system's roots when no CA is given.
//
// The files are read again, at most once per Files.Interval, when a handshake needs them;
// a change is used from the next handshake, and a change that does not parse (say, a new
// certificate beside the old key mid-rotation) is logged and the last good material kept.
// Connections already made keep theirs, as TLS does.
//
// A nil *Files is plaintext: its listeners are the ones given, its clients insecure.
package tlsfiles

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultInterval is how often, at most, the files are read again.
const DefaultInterval = 10 * time.Second

// Paths name the files: CertFile and KeyFile a PEM certificate (chain, leaf first) and its
// PEM private key, both or neither; CAFile a PEM bundle of the CAs that sign peers'
// certificates, optional, and only with a certificate.
type Paths struct {
	CertFile, KeyFile, CAFile string
}

// Enabled reports whether any file is named.
func (p Paths) Enabled() bool { return p.CertFile != "" || p.KeyFile != "" || p.CAFile != "" }

// Files is TLS material loaded from Paths and kept current. Its methods are safe for
// concurrent use.
type Files struct {
	paths Paths
	log   *zap.Logger
	// Interval is how often, at most, the files are read again; DefaultInterval from Load.
	// Set it before first use.
	Interval time.Duration

	mu        sync.Mutex
	checked   time.Time
	certPEM   []byte
	keyPEM    []byte
	caPEM     []byte
	cert      *tls.Certificate
	pool      *x509.CertPool // nil without a CA file: the system's roots
	lastError string         // the last reload error logged, so it is logged once
}

// Load reads and checks the files now, so a missing, unreadable or mismatched file stops
// the service at start with an error naming it; nil, nil when p names none. Later reload
// problems go to log.
func Load(p Paths, log *zap.Logger) (*Files, error) {
	if !p.Enabled() {
		return nil, nil
	}
	if p.CertFile == "" || p.KeyFile == "" {
		return nil, errors.New("a certificate file and a key file are both required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	f := &Files{paths: p, log: log, Interval: DefaultInterval}
	certPEM, keyPEM, caPEM, err := p.read()
	if err != nil {
		return nil, err
	}
	if err := f.parse(certPEM, keyPEM, caPEM); err != nil {
		return nil, err
	}
	f.checked = time.Now()
	return f, nil
}

// read returns the files' contents; caPEM is nil without a CA file.
func (p Paths) read() (certPEM, keyPEM, caPEM []byte, err error) {
	if certPEM, err = os.ReadFile(p.CertFile); err != nil {
		return nil, nil, nil, fmt.Errorf("certificate file: %w", err)
	}
	if keyPEM, err = os.ReadFile(p.KeyFile); err != nil {
		return nil, nil, nil, fmt.Errorf("key file: %w", err)
	}
	if p.CAFile != "" {
		if caPEM, err = os.ReadFile(p.CAFile); err != nil {
			return nil, nil, nil, fmt.Errorf("CA file: %w", err)
		}
	}
	return certPEM, keyPEM, caPEM, nil
}

// parse checks the contents and, if they hold, makes them current. Its errors never quote
// the key.
func (f *Files) parse(certPEM, keyPEM, caPEM []byte) error {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair's errors describe, never quote, what it read.
		return fmt.Errorf("certificate %s and key %s: %w", f.paths.CertFile, f.paths.KeyFile, err)
	}
	var pool *x509.CertPool
	if f.paths.CAFile != "" {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return fmt.Errorf("CA file %s holds no PEM certificate", f.paths.CAFile)
		}
	}
	f.certPEM, f.keyPEM, f.caPEM, f.cert, f.pool = certPEM, keyPEM, caPEM, &cert, pool
	return nil
}

// current returns the certificate and CA pool, reading the files again first if Interval
// has passed since they were last read.
func (f *Files) current() (*tls.Certificate, *x509.CertPool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checked) >= f.Interval {
		f.checked = time.Now()
		f.reload()
	}
	return f.cert, f.pool
}

// reload reads the files and takes them if they changed and hold; otherwise it logs why
// not (once per distinct problem) and keeps what it has.
func (f *Files) reload() {
	certPEM, keyPEM, caPEM, err := f.paths.read()
	if err == nil {
		if bytes.Equal(certPEM, f.certPEM) && bytes.Equal(keyPEM, f.keyPEM) && bytes.Equal(caPEM, f.caPEM) {
			f.lastError = ""
			return
		}
		err = f.parse(certPEM, keyPEM, caPEM)
	}
	if err != nil {
		if msg := err.Error(); msg != f.lastError {
			f.lastError = msg
			f.log.Warn("TLS files changed but cannot be used; keeping the last good ones", zap.Error(err))
		}
		return
	}
	f.lastError = ""
	fields := []zap.Field{zap.String("cert_file", f.paths.CertFile)}
	if leaf := f.cert.Leaf; leaf != nil {
		fields = append(fields, zap.Time("not_after", leaf.NotAfter))
	}
	f.log.Info("TLS files reloaded", fields...)
}

// Mutual reports whether internal listeners demand client certificates (a CA is given).
func (f *Files) Mutual() bool { return f != nil && f.paths.CAFile != "" }

// nextProtos are offered by every listener: HTTP/2 (gRPC needs it) and HTTP/1.1.
var nextProtos = []string{"h2", "http/1.1"}

// ServerConfig is the configuration of a listener: public ones never ask for a client
// certificate; internal ones demand one the CA signed when there is a CA. Nil on a nil
// Files.
func (f *Files) ServerConfig(public bool) *tls.Config {
	if f == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := f.current()
			c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: nextProtos, Certificates: []tls.Certificate{*cert}}
			if !public && pool != nil {
				c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
			}
			return c, nil
		},
	}
}

// Listener serves TLS on lis by ServerConfig(public); lis itself on a nil Files. The
// handshake runs on the connection's first read or write, so the server's own deadlines
// for a new connection (gRPC's handshake timeout, HTTP's ReadHeaderTimeout) bound it.
func (f *Files) Listener(lis net.Listener, public bool) net.Listener {
	if f == nil || lis == nil {
		return lis
	}
	return tls.NewListener(lis, f.ServerConfig(public))
}

// ClientConfig is a client's configuration for one connection to serverName (a host name
// or IP address the server's certificate must name): the current certificate, and the CA
// as the only root when there is one. Nil on a nil Files.
func (f *Files) ClientConfig(serverName string) *tls.Config {
	if f == nil {
		return nil
	}
	cert, pool := f.current()
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, Certificates: []tls.Certificate{*cert}, RootCAs: pool}
}

// DialOption is the transport of a gRPC client of another Latchkey service: TLS by
// ClientConfig, made afresh for each connection so rotated files are used; plaintext on a
// nil Files.
func (f *Files) DialOption() grpc.DialOption {
	if f == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(clientCreds{f: f})
}

// NATSOption makes a NATS connection to url use TLS with these files when url is tls://
// or a CA is given (the server must then offer TLS); otherwise, and on a nil Files, it
// changes nothing (a server that requires TLS is still met with TLS, verified against the
// system's roots).
func (f *Files) NATSOption(url string) nats.Option {
	if !f.Mutual() && (f == nil || !isTLSURL(url)) {
		return func(*nats.Options) error { return nil }
	}
	return nats.ClientTLSConfig(
		func() (tls.Certificate, error) { cert, _ := f.current(); return *cert, nil },
		func() (*x509.CertPool, error) {
			if _, pool := f.current(); pool != nil {
				return pool, nil
			}
			return x509.SystemCertPool()
		})
}

// isTLSURL reports whether any of NATS's comma-separated server URLs is tls://.
func isTLSURL(url string) bool {
	for u := range strings.SplitSeq(url, ",") {
		if scheme, _, ok := strings.Cut(strings.TrimSpace(u), "://"); ok && strings.EqualFold(scheme, "tls") {
			return true
		}
	}
	return false
}

// clientCreds are gRPC client credentials that take the current files for each handshake;
// the server name is the dialled address's host, as credentials.NewTLS does.
type clientCreds struct{ f *Files }

func (c clientCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(c.f.ClientConfig("")).ClientHandshake(ctx, authority, conn)
}

func (clientCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("tlsfiles: client credentials cannot serve")
}

// tlsInfo is what gRPC's own TLS credentials report.
var tlsInfo = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12}).Info()

func (clientCreds) Info() credentials.ProtocolInfo { return tlsInfo }

func (c clientCreds) Clone() credentials.TransportCredentials { return c }

//nolint:staticcheck // part of the interface; grpc.WithAuthority replaces it
func (clientCreds) OverrideServerName(string) error {
	return errors.New("tlsfiles: use grpc.WithAuthority")
}
