package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLine(t *testing.T) {
	defer func(v, r string, read func() (*debug.BuildInfo, bool)) {
		version, revision, readBuildInfo = v, r, read
	}(version, revision, readBuildInfo)
	readBuildInfo = func() (*debug.BuildInfo, bool) { return nil, false }

	version, revision = "", ""
	require.Equal(t, "keys dev (revision unknown)", Line("keys"), "a build given nothing at link time")

	version, revision = "v1.2.3", "84a39ce57c91b040b5761e4d87f0da64afe5715b"
	require.Equal(t, "keys v1.2.3 (revision 84a39ce57c91b040b5761e4d87f0da64afe5715b)", Line("keys"))
}

// TestLineFromVCSStamp: a plain `go build` (no -ldflags) says the commit Go stamped.
func TestLineFromVCSStamp(t *testing.T) {
	defer func(v, r string, read func() (*debug.BuildInfo, bool)) {
		version, revision, readBuildInfo = v, r, read
	}(version, revision, readBuildInfo)
	version, revision = "", ""

	stamped := &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "84a39ce57c91b040b5761e4d87f0da64afe5715b"}, {Key: "vcs.modified", Value: "true"},
	}}
	readBuildInfo = func() (*debug.BuildInfo, bool) { return stamped, true }
	require.Equal(t, "keys dev (revision 84a39ce57c91b040b5761e4d87f0da64afe5715b-dirty)", Line("keys"))

	stamped.Main.Version, stamped.Settings = "v1.2.3", nil
	require.Equal(t, "keys v1.2.3 (revision unknown)", Line("keys"), "go install …@v1.2.3: a version, no VCS stamp")

	version, revision = "v9", "abc"
	require.Equal(t, "keys v9 (revision abc)", Line("keys"), "link-time values win")
}
