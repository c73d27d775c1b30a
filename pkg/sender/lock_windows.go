//go:build windows

package sender

import (
	"context"
	"os"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive LockFileEx lock of path (created if absent) and returns its
// release; Windows drops it when the process dies. It blocks until the lock is free or
// ctx is done.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, keyFileMode)
	if err != nil {
		return nil, err
	}
	h := windows.Handle(f.Fd())
	release := func() {
		_ = windows.UnlockFileEx(h, 0, 1, 0, new(windows.Overlapped))
		_ = f.Close()
	}
	done := make(chan error, 1)
	go func() {
		done <- windows.LockFileEx(h, windows.LOCKFILE_EXCLUSIVE_LOCK, 0, 1, 0, new(windows.Overlapped))
	}()
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
