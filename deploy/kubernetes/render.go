package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Overlays are the overlays `make manifests` renders, under overlays/.
var Overlays = []string{"dev", "prod"}

// Images are the images the manifests run, by the name the base gives them: the names of
// `make images` (deploy/images/specs.go).
var Images = []string{"accounts", "keys", "audit", "ingest-gateway"}

// Render builds overlays/<overlay> of the kustomization tree at dir, with each of Images
// taken from registry/<name>:tag (registry "" and tag "" leave the base's names), and
// returns the multi-document YAML kustomize writes. The tree is read into memory first:
// the overlay is built under a kustomization of Render's own that sets the images, and
// nothing is written to dir.
func Render(dir, overlay, registry, tag string) ([]byte, error) {
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isManifest(path) {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path) //nolint:gosec // a file of the tree the caller named, read to render it
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join("/tree", rel), b)
	})
	if err != nil {
		return nil, err
	}
	if !mem.Exists(filepath.Join("/tree/overlays", overlay, "kustomization.yaml")) {
		return nil, fmt.Errorf("no overlay %q in %s/overlays", overlay, dir)
	}
	var k strings.Builder
	fmt.Fprintf(&k, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../overlays/%s\n", overlay)
	if registry != "" || tag != "" {
		k.WriteString("images:\n")
		for _, name := range Images {
			img := types.Image{Name: name, NewName: name, NewTag: tag}
			if registry != "" {
				img.NewName = strings.TrimSuffix(registry, "/") + "/" + name
			}
			fmt.Fprintf(&k, "  - name: %q\n    newName: %q\n", img.Name, img.NewName)
			if img.NewTag != "" {
				fmt.Fprintf(&k, "    newTag: %q\n", img.NewTag)
			}
		}
	}
	wrapper := filepath.Join("/tree/render", overlay)
	if err := mem.WriteFile(filepath.Join(wrapper, "kustomization.yaml"), []byte(k.String())); err != nil {
		return nil, err
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, wrapper)
	if err != nil {
		return nil, fmt.Errorf("kustomize build overlays/%s: %w", overlay, err)
	}
	return res.AsYaml()
}

// isManifest is whether a file under the tree is kustomize's to read: YAML, the NATS
// configurations and the generators' env files (not the Go sources beside them).
func isManifest(path string) bool {
	switch filepath.Ext(path) {
	case ".yaml", ".yml", ".conf", ".env":
		return true
	}
	return false
}
