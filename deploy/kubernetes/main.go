// Command kubernetes renders Latchkey's Kubernetes manifests (`make manifests`): each
// overlay under overlays/ built with kustomize, pinned in this module's go.mod, into
// <out>/<overlay>.yaml. It is a module of its own, outside the go.work workspace, so the
// Kubernetes libraries do not move the services' dependency versions.
//
//	go run . -out ../../.cache/manifests -registry registry.example.com/latchkey -tag v1.2.0
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	dir := flag.String("dir", ".", "the kustomization tree (base/, overlays/)")
	out := flag.String("out", "", "where to write <overlay>.yaml (required)")
	registry := flag.String("registry", "", `where the images are: <registry>/<name>, e.g. "registry.example.com/latchkey" ("" keeps the base's bare names)`)
	tag := flag.String("tag", "", `the images' tag, e.g. the VERSION "make images" tagged them with ("" for none)`)
	flag.Parse()
	if err := run(*dir, *out, *registry, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "manifests:", err)
		os.Exit(1)
	}
}

func run(dir, out, registry, tag string) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	if err := os.MkdirAll(out, 0o755); err != nil { //nolint:gosec // manifests are public, like the repository they come from
		return err
	}
	for _, o := range Overlays {
		y, err := Render(dir, o, registry, tag)
		if err != nil {
			return err
		}
		path := filepath.Join(out, o+".yaml")
		if err := os.WriteFile(path, y, 0o644); err != nil { //nolint:gosec // no secret in them (the prod Secret is the user's; dev's is in git)
			return err
		}
		fmt.Printf("%s: %d bytes\n", path, len(y))
	}
	return nil
}
