package main

import (
	"bytes"
	"encoding/pem"
	"runtime/debug"

	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// bundleModule is the module the CA certificates come from; go.mod pins its version and
// go.sum its hash.
const bundleModule = "golang.org/x/crypto/x509roots/fallback"

// caBundle is the images' /etc/ssl/certs/ca-certificates.crt (where Go's crypto/x509, and
// OpenSSL, look on Linux): the Mozilla NSS roots as golang.org/x/crypto/x509roots/fallback
// ships them, in PEM, in the bundle's order.
//
// Why this and not the build machine's /etc/ssl/certs: the module is pinned in go.mod and
// its content checked against go.sum, so every machine that builds a given commit writes
// the same bytes and the images keep their digests; the machine's file changes with its
// distribution's ca-certificates package and differs between machines. Updating the roots
// is a reviewed `go get` of the module, like any dependency.
//
// A root the bundle constrains (NSS's "distrust after" date) is left out: a PEM file cannot
// carry the constraint, and trusting the root without it would accept certificates NSS has
// stopped trusting.
func caBundle() []byte {
	var b bytes.Buffer
	b.WriteString("# Mozilla NSS root certificates, from " + bundleModule + " " + bundleVersion() + "\n")
	b.WriteString("# (roots with a distrust-after constraint are left out). Written by deploy/images.\n")
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		// Writing to a bytes.Buffer does not fail.
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate})
	}
	return b.Bytes()
}

// bundleVersion is the pinned version of bundleModule this program was built with.
func bundleVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown version)"
	}
	for _, dep := range info.Deps {
		if dep.Path == bundleModule {
			return dep.Version
		}
	}
	return "(unknown version)"
}
