// Package buildinfo says which build of Latchkey a binary is: its version and the commit it
// was built from, both set at link time by `make build` and `make images`:
//
//	-ldflags "-X github.com/latchkey/latchkey/pkg/buildinfo.version=v1.2.3
//	          -X github.com/latchkey/latchkey/pkg/buildinfo.revision=<40-hex commit>"
//
// A plain `go build` or `go run` sets neither; then Revision falls back to the VCS stamp Go
// writes into the binary (runtime/debug.ReadBuildInfo's vcs.revision, with "-dirty" when
// vcs.modified), and Version to the main module's version (`go install …@v1.2.3`). Go
// writes no VCS stamp in workspace mode or with -buildvcs=false, so such a binary says
// "dev" and Unknown. Every binary's --version prints Line
// (pkg/server.Main for the services and the suite).
package buildinfo

import "runtime/debug"

// Set by the linker (-X); see the package comment.
var (
	version  string
	revision string
)

// Unknown is the revision of a build that was given none at link time.
const Unknown = "unknown"

// Version is the version the binary was built as (`git describe --tags --always --dirty`
// by default, e.g. "v1.2.3" or "84a39ce-dirty"), else the main module's version when Go
// recorded one, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := readBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Revision is the full commit id the binary was built from: the one given at link time,
// else Go's VCS stamp, else Unknown.
func Revision() string {
	if revision != "" {
		return revision
	}
	if bi, ok := readBuildInfo(); ok {
		rev, dirty := "", ""
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision":
				rev = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "-dirty"
			}
		}
		if rev != "" {
			return rev + dirty
		}
	}
	return Unknown
}

// readBuildInfo is debug.ReadBuildInfo; tests replace it.
var readBuildInfo = debug.ReadBuildInfo

// Line is what `<name> --version` prints: "<name> <version> (revision <revision>)".
func Line(name string) string {
	return name + " " + Version() + " (revision " + Revision() + ")"
}
