package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// buildinfoPkg is where the binaries keep their version and revision (pkg/buildinfo).
const buildinfoPkg = "github.com/latchkey/latchkey/pkg/buildinfo"

// Meta is what an image says about the build it holds.
type Meta struct {
	// Version is the version the binaries report and the images' tag (`git describe`).
	Version string
	// Revision is the full commit id.
	Revision string
	// Source is the repository's URL (org.opencontainers.image.source).
	Source string
	// Epoch is the time, in Unix seconds, every timestamp in the images is set to: the
	// commit's time (SOURCE_DATE_EPOCH), so rebuilding a commit gives the same digests.
	Epoch int64
}

// Platform is an os/arch pair, e.g. linux/amd64.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// parsePlatforms reads a comma-separated list of os/arch pairs.
func parsePlatforms(list string) ([]Platform, error) {
	var out []Platform
	for item := range strings.SplitSeq(list, ",") {
		os, arch, ok := strings.Cut(strings.TrimSpace(item), "/")
		if !ok || os == "" || arch == "" {
			return nil, fmt.Errorf("platform %q: want os/arch, e.g. linux/amd64", item)
		}
		out = append(out, Platform{OS: os, Arch: arch})
	}
	return out, nil
}

// buildBinaries compiles the specs' main packages for one platform into dir (dir/<name>),
// in one `go build` so their shared packages compile once. The binaries are static
// (CGO_ENABLED=0: nothing to load from an image that has no libc), carry no file-system
// paths of the build machine (-trimpath), no symbol table or DWARF (-s -w: smaller images),
// and the version and revision of meta (pkg/buildinfo). The same commit, toolchain and
// flags give the same bytes.
//
// The build uses the repository's workspace (root/go.work) whatever GOWORK this program
// runs with (the Makefile runs it with GOWORK=off, outside the workspace).
func buildBinaries(ctx context.Context, root, dir string, p Platform, meta Meta, specs []Spec) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	args := []string{
		"build", "-trimpath", "-buildvcs=false",
		"-ldflags", ldflags(meta),
		"-o", dir + string(filepath.Separator),
	}
	for _, s := range specs {
		if path.Base(s.Package) != s.Name {
			return fmt.Errorf("image %s: its package %s would build a binary of another name", s.Name, s.Package)
		}
		args = append(args, s.Package)
	}
	cmd := exec.CommandContext(ctx, "go", args...) //nolint:gosec // the Specs' packages and flags checked by run (tagSafe)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch,
		// The baseline of each architecture, whatever the machine's environment says.
		"GOAMD64=v1", "GOARM64=v8.0",
		"GOWORK="+filepath.Join(root, "go.work"), "GOFLAGS=",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %w", p, err)
	}
	return nil
}

// ldflags sets pkg/buildinfo's version and revision.
func ldflags(meta Meta) string {
	return fmt.Sprintf("-s -w -X %s.version=%s -X %s.revision=%s", buildinfoPkg, meta.Version, buildinfoPkg, meta.Revision)
}
