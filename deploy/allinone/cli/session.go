package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// session is what `latchkey login` keeps between commands: the API it logged in to and the
// session token the API answered. It never holds a password or an API key's secret.
type session struct {
	API       string    `json:"api"`
	Email     string    `json:"email"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// expired says whether the session's expires_at has passed (the server would answer 401).
func (s *session) expired() bool {
	return !s.ExpiresAt.IsZero() && time.Now().After(s.ExpiresAt)
}

// sessionFile is where the session is kept: latchkey/session.json under the user's
// configuration directory (os.UserConfigDir: $XDG_CONFIG_HOME or ~/.config on Linux,
// ~/Library/Application Support on macOS, %AppData% on Windows).
func sessionFile() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory to keep the session in: %w", err)
	}
	return filepath.Join(dir, "latchkey", "session.json"), nil
}

// loadSession reads the kept session; a missing file is (nil, nil). A file others may
// read (any group or other permission bit) is refused, as ssh refuses such a private key.
func loadSession() (*session, error) {
	file, err := sessionFile()
	if err != nil {
		return nil, err
	}
	info, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		// As ssh refuses a private key others can read: the token may have leaked already.
		return nil, fmt.Errorf("%s is readable by others (mode %04o): its token may have leaked; run `latchkey logout` and `latchkey login` again (or chmod 600 it)", file, perm)
	}
	b, err := os.ReadFile(file) //nolint:gosec // our own file, under the user's config dir
	if err != nil {
		return nil, err
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s is not a session file (run `latchkey login` again): %w", file, err)
	}
	return &s, nil
}

// saveSession writes s readable by the user only: the directory 0700, the file 0600,
// replaced at once (written beside it, then renamed), so no other user ever reads the
// token and a crash never leaves half a file.
func saveSession(s *session) (string, error) {
	file, err := sessionFile()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil { //nolint:gosec // a directory needs x; 0700 is the user only
		return "", err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".session-*") // 0600
	if err != nil {
		return "", err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return file, os.Rename(tmp.Name(), file)
}

// removeSession deletes the kept session; none is no error.
func removeSession() error {
	file, err := sessionFile()
	if err != nil {
		return err
	}
	if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
