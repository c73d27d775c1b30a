package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/latchkey/latchkey/pkg/devsecret"
)

// Secrets are what every start of a cluster on the same database must share: keys are
// hashed with the pepper, the audit chains' checkpoints signed with the signing key, and
// the operator token is the platform team's credential.
type Secrets struct {
	OperatorToken, Pepper, SigningKey string
}

// KeptSecrets returns the secrets of the cluster whose state is in dir: each one from the
// environment when set there (LATCHKEY_OPERATOR_TOKEN, LATCHKEY_PEPPER,
// AUDIT_SIGNING_KEY), else the one kept in dir (operator-token, pepper, audit-signing-key;
// mode 0600), generated on first use, as `make run` keeps its pepper and signing key
// (package devsecret). The error is a read or write error of those files.
func KeptSecrets(dir string) (Secrets, error) {
	var s Secrets
	for _, v := range []struct {
		value *string
		env   string
		kept  func(string) (string, error)
		file  string
	}{
		{&s.OperatorToken, "LATCHKEY_OPERATOR_TOKEN", devsecret.OperatorToken, "operator-token"},
		{&s.Pepper, "LATCHKEY_PEPPER", devsecret.Pepper, "pepper"},
		{&s.SigningKey, "AUDIT_SIGNING_KEY", devsecret.SigningKey, "audit-signing-key"},
	} {
		if *v.value = os.Getenv(v.env); *v.value != "" {
			continue
		}
		var err error
		if *v.value, err = v.kept(filepath.Join(dir, v.file)); err != nil {
			return Secrets{}, fmt.Errorf("cluster: %w", err)
		}
	}
	return s, nil
}

// Lock makes the caller the only cluster with its state in dir (its stores, logs,
// topology.json, and the database its secrets belong to): it takes an exclusive flock(2)
// on dir/lock, which the kernel releases when this process ends however it ends, and
// writes this process's id there. It fails at once, naming the holder's pid, when another
// process holds it. unlock releases it.
func Lock(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil { //nolint:gosec // dir is the launcher's own state directory (-dir)
		return nil, err
	}
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // dir is the launcher's own state directory
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil { //nolint:gosec // a file descriptor fits an int
		b, _ := os.ReadFile(path) //nolint:gosec // as above
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := strings.TrimSpace(string(b))
			if _, perr := strconv.Atoi(holder); perr != nil {
				holder = "unknown"
			}
			return nil, fmt.Errorf("cluster: another cluster runs from %s (pid %s); one at a time: stop it first (Ctrl-C in its terminal, or kill %s)", dir, holder, holder)
		}
		return nil, fmt.Errorf("cluster: locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		_ = f.Close()
		return nil, err
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { _ = f.Close() }, nil
}
