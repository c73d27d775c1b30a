package buildinfo

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLine(t *testing.T) {
	defer func(v, r string) { version, revision = v, r }(version, revision)

	version, revision = "", ""
	require.Equal(t, "keys dev (revision unknown)", Line("keys"), "a build given nothing at link time")

	version, revision = "v1.2.3", "84a39ce57c91b040b5761e4d87f0da64afe5715b"
	require.Equal(t, "keys v1.2.3 (revision 84a39ce57c91b040b5761e4d87f0da64afe5715b)", Line("keys"))
}
