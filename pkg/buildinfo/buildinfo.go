// Package buildinfo says which build of Latchkey a binary is: its version and the commit it
// was built from, both set at link time by `make build` and `make images`:
//
//	-ldflags "-X github.com/latchkey/latchkey/pkg/buildinfo.version=v1.2.3
//	          -X github.com/latchkey/latchkey/pkg/buildinfo.revision=<40-hex commit>"
//
// A plain `go build` or `go run` sets neither (and Go writes no VCS stamp in workspace
// mode), so such a binary says "dev" and Unknown. Every binary's --version prints Line
// (pkg/server.Main for the services and the suite).
package buildinfo

// Set by the linker (-X); see the package comment.
var (
	version  string
	revision string
)

// Unknown is the revision of a build that was given none at link time.
const Unknown = "unknown"

// Version is the version the binary was built as (`git describe --tags --always --dirty`
// by default, e.g. "v1.2.3" or "84a39ce-dirty"), or "dev" when none was given at link time.
func Version() string {
	if version == "" {
		return "dev"
	}
	return version
}

// Revision is the full commit id the binary was built from, or Unknown when none was given
// at link time.
func Revision() string {
	if revision == "" {
		return Unknown
	}
	return revision
}

// Line is what `<name> --version` prints: "<name> <version> (revision <revision>)".
func Line(name string) string {
	return name + " " + Version() + " (revision " + Revision() + ")"
}
