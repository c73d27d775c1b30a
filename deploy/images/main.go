// Command images builds Latchkey's OCI images (`make images`) without a container engine:
// one per service (accounts, keys, audit, ingest-gateway) and one for the command line
// (latchkey), each an OCI image layout at <out>/<name> holding an image index with one
// image per platform.
//
// Every image is FROM scratch: a static binary at /usr/local/bin/<name> (the entrypoint),
// /etc/passwd and /etc/group with the nonroot user (65532) it runs as, the Mozilla CA
// certificates at /etc/ssl/certs/ca-certificates.crt, and nothing else: no shell. Every
// timestamp is -epoch (the commit's time), so building a commit twice gives the same
// digests on any machine with the same Go toolchain.
//
//	go run . -repo ../.. -out ../../.cache/images -version v1.2.3 -revision <commit> -epoch <unix seconds>
//
// It is a module of its own (run with GOWORK=off, like the tools in deploy/tools) so that
// go-containerregistry's dependencies never enter the services' module graph.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
)

// Source is the repository the images say they come from (org.opencontainers.image.source).
const Source = "https://github.com/latchkey/latchkey"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

// tagSafe is what a version may hold: it is an image tag (ref name) and a -X value.
var tagSafe = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$`)

func run() error {
	repo := flag.String("repo", "../..", "the repository's root (holds go.work)")
	out := flag.String("out", "", "where the image layouts go, one directory per image (default <repo>/.cache/images)")
	only := flag.String("images", "", "comma-separated images to build (default all: accounts, keys, audit, ingest-gateway, latchkey)")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch pairs; each image's index holds one image per platform")
	version := flag.String("version", "dev", "the version the binaries report, the images' tag")
	revision := flag.String("revision", "unknown", "the commit the images are built from")
	epoch := flag.Int64("epoch", 0, "every timestamp in the images, in Unix seconds (SOURCE_DATE_EPOCH: the commit's time)")
	source := flag.String("source", Source, "the repository's URL (org.opencontainers.image.source)")
	flag.Parse()

	root, err := filepath.Abs(*repo)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
		return fmt.Errorf("-repo %s: not the repository's root (%w)", *repo, err)
	}
	if *out == "" {
		*out = filepath.Join(root, ".cache", "images")
	}
	if !tagSafe.MatchString(*version) || !tagSafe.MatchString(*revision) {
		return errors.New("-version and -revision: letters, digits and . _ + - only (they become a tag and a linker flag)")
	}
	if *epoch < 0 {
		return errors.New("-epoch: seconds since 1970, not negative")
	}
	specs, unknown := specsNamed(*only)
	if len(unknown) > 0 {
		return fmt.Errorf("-images: unknown %q", unknown)
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	meta := Meta{Version: *version, Revision: *revision, Source: *source, Epoch: *epoch}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	digests, err := buildImages(ctx, root, *out, specs, plats, meta)
	if err != nil {
		return err
	}
	for _, s := range specs {
		fmt.Printf("%-15s %s  %s\n", s.Name, digests[s.Name], filepath.Join(*out, s.Name))
	}
	return nil
}
