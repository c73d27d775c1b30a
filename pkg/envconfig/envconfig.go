// Package envconfig reads settings from environment variables, collecting every bad value
// so a misconfigured service says all that is wrong at once.
package envconfig

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Reader reads variables and remembers the errors.
type Reader struct{ errs []error }

// String returns $key, or def when unset or empty.
func (r *Reader) String(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// Duration returns $key parsed as a Go duration ("30s", "24h"), or def.
func (r *Reader) Duration(key string, def time.Duration) time.Duration {
	v := r.String(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		r.errs = append(r.errs, fmt.Errorf("%s=%q is not a duration like 30s or 24h", key, v))
		return def
	}
	return d
}

// Int returns $key as an integer, or def.
func (r *Reader) Int(key string, def int) int {
	v := r.String(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q is not an integer", key, v))
		return def
	}
	return n
}

// Bool returns $key as a boolean (true/false, 1/0, t/f), or def.
func (r *Reader) Bool(key string, def bool) bool {
	v := r.String(key, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s=%q is not true or false", key, v))
		return def
	}
	return b
}

// Err returns every bad value seen, or nil.
func (r *Reader) Err() error { return errors.Join(r.errs...) }

// Fail records a problem found by a caller's own parsing.
func (r *Reader) Fail(err error) { r.errs = append(r.errs, err) }
