//go:build !unix && !windows

package sender

import (
	"context"
	"errors"
)

// lockFile has no file lock to take on this system: anonymous mode cannot promise one key
// for concurrent starts, so it is refused; pass a key instead.
func lockFile(context.Context, string) (func(), error) {
	return nil, errors.New("anonymous mode needs file locks, which this system lacks: set the key")
}
