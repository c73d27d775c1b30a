package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The images' user, its home and where the binary goes.
const (
	// nonroot is the user and group every image runs as: distroless's nonroot, so policies
	// written for those images (runAsUser 65532) fit these.
	nonroot   = 65532
	homeDir   = "/home/nonroot"
	binDir    = "/usr/local/bin"
	caFile    = "/etc/ssl/certs/ca-certificates.crt"
	passwd    = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" //nolint:gosec // no password: "x" points to a shadow file there is none of
	group     = "root:x:0:\nnonroot:x:65532:\n"
	nsswitch  = "hosts: files dns\n" // /etc/hosts first, then DNS, for Go's resolver and any other
	refName   = "org.opencontainers.image.ref.name"
	userGroup = "65532:65532"
)

// entry is one file or directory of a layer.
type entry struct {
	name string // without the leading slash; a directory ends with one
	mode int64
	uid  int
	body []byte
}

// baseEntries are the files every image shares (one layer, the same digest in every
// image): users, name service, CA certificates, the nonroot home and /tmp. No shell, no
// package manager, no libc.
func baseEntries() []entry {
	return []entry{
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/nsswitch.conf", mode: 0o644, body: []byte(nsswitch)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755},
		{name: "etc/ssl/certs/", mode: 0o755},
		{name: caFile[1:], mode: 0o644, body: caBundle()},
		{name: "home/", mode: 0o755},
		{name: homeDir[1:] + "/", mode: 0o700, uid: nonroot},
		{name: "tmp/", mode: 0o1777},
	}
}

// binaryEntries is the layer of one binary, /usr/local/bin/<name>, owned by root (the
// nonroot user can run it, not change it).
func binaryEntries(name string, binary []byte) []entry {
	return []entry{
		{name: "usr/", mode: 0o755},
		{name: "usr/local/", mode: 0o755},
		{name: binDir[1:] + "/", mode: 0o755},
		{name: binDir[1:] + "/" + name, mode: 0o755, body: binary},
	}
}

// layer writes entries as a gzipped OCI layer, every timestamp at epoch: the same entries
// give the same bytes, so the same digest.
func layer(entries []entry, epoch time.Time) (v1.Layer, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: epoch,
			Typeflag: tar.TypeReg, Size: int64(len(e.body)), Format: tar.FormatPAX,
		}
		if e.name[len(e.name)-1] == '/' {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := b.Bytes()
	return tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressionLevel(gzip.DefaultCompression),
		tarball.WithCompressedCaching,
	)
}

// Labels are the OCI annotations every image's config carries.
func (m Meta) Labels(title string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    title,
		"org.opencontainers.image.version":  m.Version,
		"org.opencontainers.image.revision": m.Revision,
		"org.opencontainers.image.source":   m.Source,
		"org.opencontainers.image.created":  m.created().Format(time.RFC3339),
	}
}

func (m Meta) created() time.Time { return time.Unix(m.Epoch, 0).UTC() }

// Image assembles one platform's image of s around binary: FROM scratch, the base layer and
// the binary's layer; run as nonroot, the binary as entrypoint, the listeners exposed.
func Image(s Spec, p Platform, binary []byte, meta Meta) (v1.Image, error) {
	epoch := meta.created()
	base, err := layer(baseEntries(), epoch)
	if err != nil {
		return nil, err
	}
	bin, err := layer(binaryEntries(s.Name, binary), epoch)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{
		Architecture: p.Arch,
		OS:           p.OS,
		Created:      v1.Time{Time: epoch},
		Config: v1.Config{
			User:         userGroup,
			Entrypoint:   []string{binDir + "/" + s.Name},
			Cmd:          s.Cmd,
			Env:          s.Env(),
			WorkingDir:   homeDir,
			ExposedPorts: s.ExposedPorts(),
			Labels:       meta.Labels(s.Name),
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{
			Created: v1.Time{Time: epoch}, CreatedBy: "deploy/images: /etc (passwd, group, nsswitch.conf, CA certificates), " + homeDir + ", /tmp",
		}},
		mutate.Addendum{Layer: bin, History: v1.History{
			Created: v1.Time{Time: epoch}, CreatedBy: "deploy/images: " + binDir + "/" + s.Name + " (" + s.Package + ")",
		}},
	)
}

// Index gathers one image per platform of s into an OCI image index, annotated like the
// images' labels.
func Index(s Spec, images map[Platform]v1.Image, platforms []Platform, meta Meta) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, ok := images[p]
		if !ok {
			return nil, fmt.Errorf("image %s: no image for %s", s.Name, p)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        plainImage{img},
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Arch}},
		})
	}
	annotated, ok := mutate.Annotations(idx, meta.Labels(s.Name)).(v1.ImageIndex)
	if !ok {
		return nil, fmt.Errorf("image %s: annotating the index", s.Name)
	}
	return annotated, nil
}

// plainImage is an image whose index entry names no artifactType: go-containerregistry
// would otherwise copy the config's media type there, which the image spec reserves for
// artifacts (manifests that are not images to run).
type plainImage struct{ v1.Image }

// ArtifactType is empty: this is an image, not an artifact.
func (plainImage) ArtifactType() (string, error) { return "", nil }

// WriteLayout writes idx as the OCI image layout dir (replacing what was there), its
// index.json naming it by meta.Version (org.opencontainers.image.ref.name: what
// `skopeo copy oci:DIR:VERSION` and `crane push DIR` find).
func WriteLayout(dir string, idx v1.ImageIndex, meta Meta) error {
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refName: meta.Version})); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.Rename(tmp, dir)
}

// buildImages compiles the specs' binaries for every platform and writes each image's
// layout under out/<name>, returning each image's index digest.
func buildImages(ctx context.Context, root, out string, specs []Spec, platforms []Platform, meta Meta) (map[string]v1.Hash, error) {
	images := map[string]map[Platform]v1.Image{}
	for _, s := range specs {
		images[s.Name] = map[Platform]v1.Image{}
	}
	binDir, err := os.MkdirTemp("", "latchkey-images-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(binDir) }()
	for _, p := range platforms {
		dir := filepath.Join(binDir, p.OS+"-"+p.Arch)
		if err := buildBinaries(ctx, root, dir, p, meta, specs); err != nil {
			return nil, err
		}
		for _, s := range specs {
			binary, err := os.ReadFile(filepath.Join(dir, s.Name)) //nolint:gosec // a file this program just built
			if err != nil {
				return nil, err
			}
			img, err := Image(s, p, binary, meta)
			if err != nil {
				return nil, fmt.Errorf("image %s for %s: %w", s.Name, p, err)
			}
			images[s.Name][p] = img
		}
	}
	digests := map[string]v1.Hash{}
	for _, s := range specs {
		idx, err := Index(s, images[s.Name], platforms, meta)
		if err != nil {
			return nil, err
		}
		if err := WriteLayout(filepath.Join(out, s.Name), idx, meta); err != nil {
			return nil, fmt.Errorf("image %s: %w", s.Name, err)
		}
		if digests[s.Name], err = idx.Digest(); err != nil {
			return nil, err
		}
	}
	return digests, nil
}
