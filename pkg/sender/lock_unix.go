//go:build unix

package sender

import (
	"context"
	"errors"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock of path (created 0600 if absent) and returns its
// release. The kernel drops the lock when the process dies, so a crashed start leaves no
// stale lock. Two opens of the file in one process conflict too (flock locks belong to the
// open file description), so goroutines are excluded as processes are. The file stays:
// removing a locked file would let a later start lock a new file beside a holder of the old.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, keyFileMode) //nolint:gosec // beside the key file
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd()) //nolint:gosec // a file descriptor fits an int
	release := func() {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
		_ = f.Close()
	}
	err = flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return release, nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		_ = f.Close()
		return nil, err
	}
	// Held by another start, which mints a key and lets go: wait for it, or for ctx.
	done := make(chan error, 1)
	go func() { done <- flock(fd, syscall.LOCK_EX) }()
	select {
	case err := <-done:
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		return release, nil
	case <-ctx.Done():
		go func() {
			if <-done == nil {
				release()
			} else {
				_ = f.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// flock retries a call interrupted by a signal.
func flock(fd, how int) error {
	for {
		err := syscall.Flock(fd, how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
