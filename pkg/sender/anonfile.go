package sender

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	pathpkg "path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// File modes of what anonymous mode writes: the key is a credential, for its owner only.
const (
	keyFileMode = 0o600
	keyDirMode  = 0o700
)

// maxKeyFile bounds what is read of a key file: a key is at most keyformat.MaxKeyLen bytes.
const maxKeyFile = 4 * keyformat.MaxKeyLen

// gitignore is written into a directory anonymous mode creates, so that the key in it is
// never committed by accident (secret scanners would revoke it).
const gitignore = "# Written by the Latchkey sender: the key here is a secret.\n*\n"

// ignoreHeader introduces the lines anonymous mode appends to the .gitignore of a key
// directory it did not create (see ensureIgnored).
const ignoreHeader = "# Latchkey sender: the anonymous key is a secret; never commit it.\n"

// errNotAnonymousFile is returned for a key file whose content is no anonymous key of the
// profile; the file is left alone (see anonymousKey).
var errNotAnonymousFile = errors.New("sender: the anonymous key file does not hold an anonymous key of this profile")

// anonKeyPath is the key file of the project directory dir; file is the profile's
// anon_key_file, a clean relative path with '/' separators (keyformat.SDK).
func anonKeyPath(dir, file string) string { return filepath.Join(dir, filepath.FromSlash(file)) }

// anonymousKey returns the anonymous key of the project directory o.Dir under one of the
// candidate profiles (one when the profile is named; every built-in profile with an
// anonymous type when Start detects it), with the profile it belongs to.
//
// A key file of a candidate that exists is used (two existing is an error: the profile must
// be named). With none, a key is minted and stored in the file of its profile: the profile
// named, or the candidate whose parser takes the minted key as anonymous (none: an error,
// and nothing is written; the key is not minted again). The key's directory is created only
// then, so a failed start leaves nothing behind.
//
// Starts racing on one project directory, in one process or many, mint one key: the mint
// happens under an exclusive lock (lockFile on mintLockPath: flock, released by the kernel
// if the process dies, so no stale lock can block a later start), after looking for the
// files again under the lock; the key is written to a temporary file (0600) that is
// fsynced and renamed into place, so a reader sees no file or the whole key, never a part.
//
// A file that exists but holds no anonymous key of its profile (empty, corrupt, another
// profile's key) is an error and is left as it is, never replaced: this package never
// writes such a file, so someone else did, and it may hold the only copy of a key whose
// data can still be claimed. Deleting it mints a new key.
func anonymousKey(ctx context.Context, o resolved, candidates []profile, named bool, mint minter) (string, KeyInfo, profile, error) {
	fromFile := func() (string, KeyInfo, profile, bool, error) {
		p, path, ok, err := existingKeyFile(o.Dir, candidates)
		if err != nil || !ok {
			return "", KeyInfo{}, profile{}, ok, err
		}
		key, err := readKeyFile(p.reg, path)
		if err != nil {
			return "", KeyInfo{}, profile{}, true, err
		}
		key, info, err := useKey(p, o, key, SourceFile, path)
		return key, info, p, true, err
	}
	if key, info, p, ok, err := fromFile(); ok || err != nil {
		return key, info, p, err
	}
	lock, err := mintLockPath(o.Dir)
	if err != nil {
		return "", KeyInfo{}, profile{}, err
	}
	unlock, err := lockFile(ctx, lock)
	if err != nil {
		return "", KeyInfo{}, profile{}, fmt.Errorf("sender: locking %s to mint the anonymous key of %s: %w", lock, o.Dir, err)
	}
	defer unlock()
	if key, info, p, ok, err := fromFile(); ok || err != nil {
		return key, info, p, err // another start minted it while this one waited
	}
	key, err := mint(ctx)
	if err != nil {
		return "", KeyInfo{}, profile{}, err
	}
	p, err := profileOfMinted(key, candidates, named)
	if err != nil {
		return "", KeyInfo{}, profile{}, err
	}
	path := anonKeyPath(o.Dir, p.reg.SDK().AnonKeyFile)
	if err := storeKey(path, key); err != nil {
		k, _ := p.reg.Parse(key)
		return "", KeyInfo{}, profile{}, fmt.Errorf("sender: the anonymous key minted (%s) could not be stored, and is not used: %w", keyformat.DisplayPrefix(k), err)
	}
	key, info, err := useKey(p, o, key, SourceMinted, path)
	return key, info, p, err
}

// existingKeyFile finds the candidate whose key file exists in dir; ok is false when none
// does, and more than one is an error. A file that cannot even be looked at counts as
// existing, so that reading it reports why.
func existingKeyFile(dir string, candidates []profile) (p profile, path string, ok bool, err error) {
	var found []profile
	var paths []string
	for _, c := range candidates {
		path := anonKeyPath(dir, c.reg.SDK().AnonKeyFile)
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		found, paths = append(found, c), append(paths, path)
	}
	switch len(found) {
	case 0:
		return profile{}, "", false, nil
	case 1:
		return found[0], paths[0], true, nil
	}
	return profile{}, "", false, fmt.Errorf("sender: %s exist together, the anonymous key files of profiles %s: set Options.Profile or %s to say which profile the server runs",
		strings.Join(paths, " and "), quoteNames(found), EnvProfile)
}

// profileOfMinted is the candidate of which key, just minted, is an anonymous key. Named,
// the one candidate must take it; the error then names the built-in profile that does, if
// any, since the server runs that one.
func profileOfMinted(key string, candidates []profile, named bool) (profile, error) {
	var (
		found  []profile
		closer error
	)
	for _, p := range candidates {
		err := checkAnonymous(p.reg, key)
		switch {
		case err == nil:
			found = append(found, p)
		case closer == nil && (named || !errors.Is(err, keyformat.ErrUnknownPrefix)):
			closer = fmt.Errorf("sender: the key POST /v1/anonymous-keys answered is no anonymous key of profile %q: %w", p.name, err)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return profile{}, fmt.Errorf("sender: the key POST /v1/anonymous-keys answered is an anonymous key of profiles %s: set Options.Profile or %s to the server's", quoteNames(found), EnvProfile)
	case named:
		hint := "does the server run the same " + EnvProfile + "?"
		if builtins, err := builtinProfiles(); err == nil {
			for _, b := range anonymousProfiles(builtins) {
				if b.reg != candidates[0].reg && checkAnonymous(b.reg, key) == nil {
					hint = fmt.Sprintf("the server runs profile %q: set Options.Profile or %s to it, or leave both empty to detect it", b.name, EnvProfile)
					break
				}
			}
		}
		return profile{}, fmt.Errorf("%w (%s); nothing was stored", closer, hint)
	case closer != nil:
		return profile{}, fmt.Errorf("%w; nothing was stored", closer)
	}
	prefix := ""
	if p := safePrefix(key); p != "" {
		prefix = fmt.Sprintf(" (prefix %q)", p)
	}
	return profile{}, fmt.Errorf("sender: the key POST /v1/anonymous-keys answered%s is an anonymous key of no built-in profile (%s): the server runs a profile file of its own; set Options.Profile or %s to its path. Nothing was stored",
		prefix, quoteNames(candidates), EnvProfile)
}

// safePrefix is the prefix of a key that parses under no profile known here, shown in an
// error: up to its last '_', when that is short and made of [a-z0-9_]; else "".
func safePrefix(key string) string {
	i := strings.LastIndexByte(key, '_')
	if i < 1 || i >= 24 {
		return ""
	}
	for _, c := range key[:i] {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return ""
		}
	}
	return key[:i+1]
}

// mintLockPath is the file whose lock serializes the mints of the project directory dir:
// one lock for every profile, since a detected profile is known only after the mint, and
// outside the project, so that a start leaves nothing there but the key and its
// .gitignore. It lives in the user's cache directory (os.UserCacheDir()/latchkey/sender),
// else in a directory of the user's own under os.TempDir(), named by a hash of dir's
// absolute, symlink-free path.
func mintLockPath(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("sender: the project directory %s: %w", dir, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	sum := sha256.Sum256([]byte(abs))
	name := hex.EncodeToString(sum[:16]) + ".lock"
	var errs []error
	if cache, err := os.UserCacheDir(); err == nil {
		d := filepath.Join(cache, "latchkey", "sender")
		if err := os.MkdirAll(d, keyDirMode); err == nil {
			return filepath.Join(d, name), nil
		}
		errs = append(errs, err)
	}
	d := filepath.Join(os.TempDir(), "latchkey-sender-"+strconv.Itoa(os.Getuid()))
	if err := os.MkdirAll(d, keyDirMode); err != nil {
		return "", fmt.Errorf("sender: making a directory for the mint lock: %w", errors.Join(append(errs, err)...))
	}
	return filepath.Join(d, name), nil
}

// readKeyFile reads the key at path; an error wrapping fs.ErrNotExist means there is none.
func readKeyFile(reg *keyformat.Registry, path string) (string, error) {
	f, err := os.Open(path) //nolint:gosec // the profile's anon_key_file in the program's project directory
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("sender: reading the anonymous key file: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("sender: reading the anonymous key file %s: %w", path, err)
	}
	key := strings.TrimSpace(string(b))
	var reason error
	switch {
	case key == "":
		reason = errors.New("it is empty")
	case len(b) > maxKeyFile:
		reason = errors.New("it is too long to hold a key")
	default:
		reason = checkAnonymous(reg, key)
	}
	if reason != nil {
		// The reason names a rule, never the file's content (it may be a mistyped key).
		return "", fmt.Errorf("%w: %s: %w; it is left as it is: delete it to mint a new anonymous key, or set the key's variable", errNotAnonymousFile, path, reason)
	}
	return key, nil
}

// checkAnonymous reports why key is not an anonymous key of reg.
func checkAnonymous(reg *keyformat.Registry, key string) error {
	k, err := reg.Parse(key)
	if err != nil {
		return err
	}
	if !k.Type.Anonymous {
		return fmt.Errorf("it holds a %q key (%s), not an anonymous one", k.Type.Name, keyformat.DisplayPrefix(k))
	}
	return nil
}

// storeKey stores the key just minted at path: in a directory it creates (0700, with a
// .gitignore of "*"), or in an existing one, left as it is but for .gitignore lines that
// keep the key out of version control (ensureIgnored). On failure what it created is
// removed again.
func storeKey(path, key string) (err error) {
	dir := filepath.Dir(path)
	created, err := makeKeyDir(dir)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			removeCreated(created)
		}
	}()
	if len(created) == 0 {
		if err := ensureIgnored(dir, filepath.Base(path)); err != nil {
			return err
		}
	}
	return writeKeyFile(path, key)
}

// makeKeyDir creates dir (0700) when it does not exist, with a .gitignore of "*" that keeps
// its content out of version control, and returns the directories it created, dir last.
// An existing directory is left as it is (its mode too: it is the project's).
func makeKeyDir(dir string) ([]string, error) {
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append([]string{d}, created...)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(created) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(dir, keyDirMode); err != nil {
		removeCreated(created)
		return nil, fmt.Errorf("sender: creating the anonymous key directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".gitignore"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyFileMode) //nolint:gosec // a fixed name in the directory just made
	if err == nil {
		_, err = f.WriteString(gitignore)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		removeCreated(created)
		return nil, fmt.Errorf("sender: writing %s: %w", filepath.Join(dir, ".gitignore"), err)
	}
	return created, nil
}

// removeCreated removes what makeKeyDir made, deepest first; a directory that is not
// empty stays (someone else put something there).
func removeCreated(created []string) {
	if len(created) == 0 {
		return
	}
	leaf := created[len(created)-1]
	if b, err := os.ReadFile(filepath.Join(leaf, ".gitignore")); err == nil && string(b) == gitignore { //nolint:gosec // in the directory just made
		_ = os.Remove(filepath.Join(leaf, ".gitignore"))
	}
	for i := len(created) - 1; i >= 0; i-- {
		_ = os.Remove(created[i])
	}
}

// ensureIgnored makes the .gitignore of dir, a directory anonymous mode did not create,
// ignore the key file name and its temporary files: it appends the lines that are missing
// ("/anon_key", "/.anon_key.*.tmp", under a comment), creating the file if need be.
// Nothing else in the directory is ignored: it holds the project's own files. Whether a
// name is ignored already is decided by that file alone (ignores): a parent's .gitignore
// or a global exclude is not read, so a line may be added that they make redundant.
func ensureIgnored(dir, name string) error {
	path := filepath.Join(dir, ".gitignore")
	b, err := os.ReadFile(path) //nolint:gosec // the key directory's .gitignore
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sender: reading %s: %w", path, err)
	}
	var add strings.Builder
	for _, line := range []struct{ rule, probe string }{
		{"/" + name, name},
		{"/." + name + ".*.tmp", "." + name + ".0.tmp"},
	} {
		if !ignores(string(b), line.probe) {
			add.WriteString(line.rule + "\n")
		}
	}
	if add.Len() == 0 {
		return nil
	}
	text := ignoreHeader + add.String()
	if len(b) > 0 && b[len(b)-1] != '\n' {
		text = "\n" + text
	}
	// 0644: the .gitignore is one of the project's files, meant to be committed.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644) //nolint:gosec // see above
	if err == nil {
		_, err = f.WriteString(text)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("sender: adding the key file to %s: %w", path, err)
	}
	return nil
}

// ignores reports whether the .gitignore rules make git ignore the file name directly in
// their directory: git's rules for such a name (blank lines and # comments skipped,
// trailing spaces trimmed, a leading "/" or "**/" anchors nothing more here, "!" negates,
// the last matching rule wins, a rule ending in "/" matches directories only, a rule with
// another "/" matches deeper paths only), with path.Match for the glob.
func ignores(rules, name string) bool {
	ignored := false
	for line := range strings.SplitSeq(rules, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		negate := strings.HasPrefix(line, "!")
		line = strings.TrimPrefix(line, "!")
		line = strings.TrimPrefix(line, "\\")
		if strings.HasPrefix(line, "**/") {
			line = line[len("**/"):]
		} else {
			line = strings.TrimPrefix(line, "/")
		}
		if line == "" || strings.Contains(line, "/") {
			continue
		}
		if ok, err := pathpkg.Match(line, name); err == nil && ok {
			ignored = !negate
		}
	}
	return ignored
}

// writeKeyFile stores key at path (0600) atomically: a temporary file in the same
// directory, written, synced and renamed into place. The caller holds the lock.
func writeKeyFile(path, key string) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("sender: storing the anonymous key: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(keyFileMode); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		_ = tmp.Close()
		return fmt.Errorf("sender: storing the anonymous key: %w", err)
	}
	_, werr := tmp.WriteString(key + "\n")
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("sender: storing the anonymous key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("sender: storing the anonymous key: %w", err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable where the system allows it (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil { //nolint:gosec // the key file's directory
		_ = d.Sync()
		_ = d.Close()
	}
}
