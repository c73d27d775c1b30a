package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

// errNotAnonymousFile is returned for a key file whose content is no anonymous key of the
// profile; the file is left alone (see anonymousKey).
var errNotAnonymousFile = errors.New("sender: the anonymous key file does not hold an anonymous key of this profile")

// anonKeyPath is the key file of the project directory dir; file is the profile's
// anon_key_file, a clean relative path with '/' separators (keyformat.SDK).
func anonKeyPath(dir, file string) string { return filepath.Join(dir, filepath.FromSlash(file)) }

// anonymousKey returns the anonymous key kept at path, minting and storing one when the
// file does not exist. minted reports that this call minted it.
//
// Starts racing on one project directory, in one process or many, mint one key: the mint
// happens under an exclusive lock of path+".lock" (flock, released by the kernel if the
// process dies, so no stale lock can block a later start), after reading the file again
// under the lock; the key is written to a temporary file (0600) that is fsynced and renamed
// into place, so a reader sees no file or the whole key, never a part.
//
// A file that exists but holds no anonymous key of the profile (empty, corrupt, another
// profile's key) is an error and is left as it is, never replaced: this package never
// writes such a file, so someone else did, and it may hold the only copy of a key whose
// data can still be claimed. Deleting it mints a new key.
func anonymousKey(ctx context.Context, reg *keyformat.Registry, path string, mint minter) (key string, minted bool, err error) {
	if key, err := readKeyFile(reg, path); !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	dir := filepath.Dir(path)
	if err := makeKeyDir(dir); err != nil {
		return "", false, err
	}
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return "", false, fmt.Errorf("sender: locking %s: %w", path, err)
	}
	defer unlock()
	if key, err := readKeyFile(reg, path); !errors.Is(err, fs.ErrNotExist) {
		return key, false, err // another start minted it while this one waited
	}
	key, err = mint(ctx)
	if err != nil {
		return "", false, err
	}
	if err := checkAnonymous(reg, key); err != nil {
		return "", false, fmt.Errorf("sender: the key POST /v1/anonymous-keys answered is no anonymous key of this profile (does the server run the same LATCHKEY_KEY_PROFILE?): %w", err)
	}
	if err := writeKeyFile(path, key); err != nil {
		return "", false, err
	}
	return key, true, nil
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

// makeKeyDir creates dir (0700) when it does not exist, with a .gitignore that keeps its
// content out of version control. An existing directory is left as it is.
func makeKeyDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, keyDirMode); err != nil {
		return fmt.Errorf("sender: creating the anonymous key directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".gitignore"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyFileMode) //nolint:gosec // a fixed name in the directory just made
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // a concurrent start wrote it
		}
		return fmt.Errorf("sender: writing %s: %w", filepath.Join(dir, ".gitignore"), err)
	}
	_, err = f.WriteString(gitignore)
	return errors.Join(err, f.Close())
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
