package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/require"
)

const repoRoot = "../.."

var (
	testMeta = Meta{
		Version:  "v0.0.0-imagetest",
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Source:   Source,
		Epoch:    1796075937,
	}
	amd64 = Platform{OS: "linux", Arch: "amd64"}
)

// TestImages builds one real service (ingest-gateway) the way `make images` does, twice,
// and assembles every image around it (the other four get a stand-in binary: their build
// is the same command, and compiling all five would cost `make test` minutes). Then it reads
// each layout back as a registry client would: the index, the config, the files, and the
// gateway's binary taken out of its image and run with --version.
func TestImages(t *testing.T) {
	ctx := context.Background()
	real := "ingest-gateway"
	gw, ok := spec(real)
	require.True(t, ok)

	// The same commit built twice gives the same binary, byte for byte.
	start := time.Now()
	binaries := make([][]byte, 2)
	for i := range binaries {
		dir := t.TempDir()
		require.NoError(t, buildBinaries(ctx, repoRoot, dir, amd64, testMeta, []Spec{gw}))
		b, err := os.ReadFile(filepath.Join(dir, real))
		require.NoError(t, err)
		binaries[i] = b
	}
	require.True(t, bytes.Equal(binaries[0], binaries[1]), "two builds of one commit differ")
	t.Logf("built %s twice in %s", real, time.Since(start))
	requireStatic(t, binaries[0])

	// Assembled twice (from the two builds), every layout is the same, digest for digest.
	standIn := []byte("\x7fELF stand-in")
	layouts := make([]string, 2)
	digests := make([]map[string]v1.Hash, 2)
	for i := range layouts {
		layouts[i] = t.TempDir()
		digests[i] = map[string]v1.Hash{}
		for _, s := range Specs {
			binary := standIn
			if s.Name == real {
				binary = binaries[i]
			}
			img, err := Image(s, amd64, binary, testMeta)
			require.NoError(t, err)
			idx, err := Index(s, map[Platform]v1.Image{amd64: img}, []Platform{amd64}, testMeta)
			require.NoError(t, err)
			require.NoError(t, WriteLayout(filepath.Join(layouts[i], s.Name), idx, testMeta))
			digests[i][s.Name], err = idx.Digest()
			require.NoError(t, err)
		}
	}
	require.Equal(t, digests[0], digests[1], "building twice gives the same digests")
	t.Logf("assembled every image twice in %s", time.Since(start))
	require.Equal(t, treeOf(t, layouts[0]), treeOf(t, layouts[1]), "building twice writes the same files")

	registry := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer registry.Close()

	for _, s := range Specs {
		t.Run(s.Name, func(t *testing.T) {
			requirePush(t, registry.Listener.Addr().String(), filepath.Join(layouts[0], s.Name), digests[0][s.Name])
			img := readLayout(t, s.Name, filepath.Join(layouts[0], s.Name), digests[0][s.Name])
			requireConfig(t, s, img)
			files := filesOf(t, img)
			requireFiles(t, s, files)
			if s.Name != real {
				return
			}
			require.Equal(t, binaries[0], files[binDir[1:]+"/"+s.Name].body, "the image holds the binary built")
			bin := filepath.Join(t.TempDir(), s.Name)
			require.NoError(t, os.WriteFile(bin, files[binDir[1:]+"/"+s.Name].body, 0o755)) //nolint:gosec // a binary to run
			cmd := exec.CommandContext(ctx, bin, "--version")
			cmd.Env = []string{} // nothing configured: --version answers anyway
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Equal(t, s.Name+" "+testMeta.Version+" (revision "+testMeta.Revision+")\n", string(out))
		})
	}
}

// requirePush loads the layout into a registry as `crane push DIR REF` does (the same
// library), and reads back the digest the registry serves under the tag: the README's way
// out of .cache/images works, and the registry sees the digest the build printed.
func requirePush(t *testing.T, registry, dir string, digest v1.Hash) {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	idx, err := top.ImageIndex(digest)
	require.NoError(t, err)
	ref, err := name.NewTag(registry+"/latchkey/"+filepath.Base(dir)+":"+testMeta.Version, name.Insecure)
	require.NoError(t, err)
	require.NoError(t, remote.WriteIndex(ref, idx))
	pulled, err := remote.Index(ref)
	require.NoError(t, err)
	got, err := pulled.Digest()
	require.NoError(t, err)
	require.Equal(t, digest, got)
}

// readLayout opens an image layout as `skopeo copy oci:DIR:VERSION` or `crane push DIR`
// would: index.json names one image index by the version, and that index has the linux/amd64
// image.
func readLayout(t *testing.T, title, dir string, digest v1.Hash) v1.Image {
	t.Helper()
	top, err := layout.ImageIndexFromPath(dir)
	require.NoError(t, err)
	m, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, m.Manifests, 1)
	d := m.Manifests[0]
	require.Equal(t, types.OCIImageIndex, d.MediaType)
	require.Equal(t, digest, d.Digest)
	require.Equal(t, testMeta.Version, d.Annotations[refName])

	idx, err := top.ImageIndex(d.Digest)
	require.NoError(t, err)
	im, err := idx.IndexManifest()
	require.NoError(t, err)
	require.Equal(t, types.OCIImageIndex, im.MediaType)
	require.Equal(t, testMeta.Labels(title), im.Annotations)
	require.Len(t, im.Manifests, 1)
	require.Equal(t, &v1.Platform{OS: "linux", Architecture: "amd64"}, im.Manifests[0].Platform)
	require.Empty(t, im.Manifests[0].ArtifactType, "an image, not an artifact")
	img, err := idx.Image(im.Manifests[0].Digest)
	require.NoError(t, err)
	mt, err := img.MediaType()
	require.NoError(t, err)
	require.Equal(t, types.OCIManifestSchema1, mt)
	return img
}

// requireConfig holds the image's config to the spec: who runs what, on which ports, with
// which labels, at which time.
func requireConfig(t *testing.T, s Spec, img v1.Image) {
	t.Helper()
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	epoch := time.Unix(testMeta.Epoch, 0).UTC()
	require.Equal(t, "linux", cf.OS)
	require.Equal(t, "amd64", cf.Architecture)
	require.True(t, cf.Created.Equal(epoch), "created at the commit's time, not now: %s", cf.Created)
	require.Len(t, cf.History, 2)
	for _, h := range cf.History {
		require.True(t, h.Created.Equal(epoch))
	}
	c := cf.Config
	require.Equal(t, "65532:65532", c.User, "non-root")
	require.Equal(t, []string{"/usr/local/bin/" + s.Name}, c.Entrypoint)
	if s.Name == "latchkey" {
		require.Equal(t, []string{"dev"}, c.Cmd, "the command line's image runs the suite when started bare")
	} else {
		require.Empty(t, c.Cmd)
	}
	require.Equal(t, "/home/nonroot", c.WorkingDir)
	require.Equal(t, map[string]string{
		"org.opencontainers.image.title":    s.Name,
		"org.opencontainers.image.version":  testMeta.Version,
		"org.opencontainers.image.revision": testMeta.Revision,
		"org.opencontainers.image.source":   "https://github.com/latchkey/latchkey",
		"org.opencontainers.image.created":  "2026-11-30T21:58:57Z",
	}, c.Labels)

	wantPorts := map[string]struct{}{}
	wantEnv := []string{"HOME=/home/nonroot"}
	for _, l := range s.Listeners {
		wantPorts[strconv.Itoa(l.Port)+"/tcp"] = struct{}{}
		wantEnv = append(wantEnv, l.Var+"=:"+strconv.Itoa(l.Port))
	}
	require.Equal(t, wantPorts, c.ExposedPorts)
	require.Equal(t, wantEnv, c.Env, "every listener on all interfaces, on its default port")
	require.NotEmpty(t, c.ExposedPorts)
}

// file is one entry of an image's file system.
type file struct {
	hdr  *tar.Header
	body []byte
}

// filesOf flattens the image's layers, as a runtime would unpack them.
func filesOf(t *testing.T, img v1.Image) map[string]file {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	require.Len(t, layers, 2, "the shared base, then the binary")
	for _, l := range layers {
		mt, err := l.MediaType()
		require.NoError(t, err)
		require.Equal(t, types.OCILayer, mt)
	}
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	files := map[string]file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		body, err := io.ReadAll(tr)
		require.NoError(t, err)
		name := strings.TrimPrefix(h.Name, "/")
		if h.Typeflag == tar.TypeDir {
			name += "/"
		}
		files[name] = file{hdr: h, body: body}
	}
	return files
}

// requireFiles checks what is in the image and what is not: the binary, the users, the CA
// certificates; no shell, nothing else on a PATH.
func requireFiles(t *testing.T, s Spec, files map[string]file) {
	t.Helper()
	names := make([]string, 0, len(files))
	for name, f := range files {
		names = append(names, name)
		require.True(t, f.hdr.ModTime.Equal(time.Unix(testMeta.Epoch, 0)), "%s is dated at the commit's time", name)
	}
	sort.Strings(names)
	want := []string{
		"etc/", "etc/group", "etc/nsswitch.conf", "etc/passwd", "etc/ssl/", "etc/ssl/certs/", "etc/ssl/certs/ca-certificates.crt",
		"home/", "home/nonroot/", "tmp/",
		"usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/" + s.Name,
	}
	sort.Strings(want)
	require.Equal(t, want, names, "the image holds these files and nothing else (no /bin/sh, no shell at all)")
	for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "usr/bin/sh"} {
		require.NotContains(t, files, shell)
	}

	bin := files["usr/local/bin/"+s.Name]
	require.Equal(t, int64(0o755), bin.hdr.Mode, "executable by anyone, writable by root only")
	require.Zero(t, bin.hdr.Uid)

	passwd := string(files["etc/passwd"].body)
	require.Contains(t, passwd, "\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
	require.Contains(t, string(files["etc/group"].body), "\nnonroot:x:65532:\n")
	home := files["home/nonroot/"].hdr
	require.Equal(t, 65532, home.Uid, "the nonroot user owns its home")
	require.Equal(t, int64(0o1777), files["tmp/"].hdr.Mode)

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"].body))
	n := bytes.Count(files["etc/ssl/certs/ca-certificates.crt"].body, []byte("-----BEGIN CERTIFICATE-----"))
	require.Greater(t, n, 100, "the Mozilla roots")
}

// requireStatic checks that the binary asks for no dynamic loader and no shared library:
// the image has neither.
func requireStatic(t *testing.T, binary []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(binary))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	require.Equal(t, elf.EM_X86_64, f.Machine)
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "a dynamic loader is asked for (cgo?)")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "dynamically linked")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)
}

// treeOf maps each file under dir to its content.
func treeOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path) //nolint:gosec // under the test's own directory
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		tree[rel] = string(b)
		return nil
	}))
	require.NotEmpty(t, tree)
	return tree
}

// TestListenersMatchDefaults holds each image's listeners to the services' own settings:
// every variable an image sets is one whose default (in the service's Config or the suite's
// Options) is 127.0.0.1 on the same port. A port changed in the code and not here, or the
// other way round, fails.
func TestListenersMatchDefaults(t *testing.T) {
	var src strings.Builder
	for _, dir := range []string{"services", "deploy/allinone"} {
		require.NoError(t, filepath.WalkDir(filepath.Join(repoRoot, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path) //nolint:gosec // the repository's own sources
			src.Write(b)
			return err
		}))
	}
	for _, s := range Specs {
		require.NotEmpty(t, s.Listeners, s.Name)
		for _, l := range s.Listeners {
			re := regexp.MustCompile(`env:"` + l.Var + `" envDefault:"127\.0\.0\.1:` + strconv.Itoa(l.Port) + `"`)
			require.Regexp(t, re, src.String(), "%s: %s defaults to 127.0.0.1:%d in the code", s.Name, l.Var, l.Port)
		}
	}
}

// TestCABundle checks the certificates every image carries: parseable, the bundle's
// unconstrained roots, and the same bytes on every call (the images' digests depend on it).
func TestCABundle(t *testing.T) {
	b := caBundle()
	require.Equal(t, b, caBundle())
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(b))
	require.Contains(t, string(b), "# Mozilla NSS root certificates, from golang.org/x/crypto/x509roots/fallback v0.0.0-")
}

// TestFlags checks the command line's parsing of platforms and image names.
func TestFlags(t *testing.T) {
	ps, err := parsePlatforms("linux/amd64, linux/arm64")
	require.NoError(t, err)
	require.Equal(t, []Platform{amd64, {OS: "linux", Arch: "arm64"}}, ps)
	_, err = parsePlatforms("amd64")
	require.ErrorContains(t, err, "want os/arch")

	all, unknown := specsNamed("")
	require.Equal(t, Specs, all)
	require.Empty(t, unknown)
	some, unknown := specsNamed("keys,nope")
	require.Len(t, some, 1)
	require.Equal(t, []string{"nope"}, unknown)

	require.Regexp(t, tagSafe, "84a39ce-dirty")
	require.NotRegexp(t, tagSafe, "v1 -X main.x=y")
}
