package api

import (
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

// Input bounds.
const (
	maxName          = 200
	maxReason        = 500
	maxMetadata      = 32
	maxMetadataKey   = 64
	maxMetadataValue = 512
	maxPageSize      = 100
	defaultPageSize  = 50
	maxGrace         = 90 * 24 * time.Hour
)

func invalid(format string, args ...any) error {
	return apierr.New(apierr.InvalidArgument, format, args...)
}

func checkText(field, v string, maxLen int) error {
	if !utf8.ValidString(v) {
		return invalid("%s must be UTF-8", field)
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return invalid("%s must not contain control characters", field)
	}
	if n := utf8.RuneCountInString(v); n > maxLen {
		return invalid("%s is %d characters; at most %d are allowed", field, n, maxLen)
	}
	return nil
}

func checkMetadata(md map[string]string) error {
	if len(md) > maxMetadata {
		return invalid("metadata has %d entries; at most %d are allowed", len(md), maxMetadata)
	}
	for k, v := range md {
		if k == "" {
			return invalid("metadata keys must not be empty")
		}
		if err := checkText("metadata key", k, maxMetadataKey); err != nil {
			return err
		}
		if err := checkText("metadata value", v, maxMetadataValue); err != nil {
			return err
		}
	}
	return nil
}

// capabilitiesFor returns the capabilities a key of t gets: the type's, or the requested
// subset of them.
func capabilitiesFor(t *keyformat.Type, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return slices.Clone(t.Capabilities), nil
	}
	var out []string
	for _, c := range requested {
		if !slices.Contains(t.Capabilities, c) {
			return nil, invalid("capability %q is not one of the %s type's: %v", c, t.Name, t.Capabilities)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func expiry(ts *timestamppb.Timestamp, now time.Time) (*time.Time, error) {
	if ts == nil {
		return nil, nil
	}
	if err := ts.CheckValid(); err != nil {
		return nil, invalid("expires_at is not a valid time")
	}
	t := ts.AsTime().Truncate(time.Microsecond) // as Postgres keeps it: the answer shows what a read will
	if !t.After(now) {
		return nil, invalid("expires_at must be in the future")
	}
	return &t, nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n < 0 || n > maxPageSize:
		return 0, invalid("page_size must be between 1 and %d", maxPageSize)
	case n == 0:
		return defaultPageSize, nil
	}
	return int(n), nil
}
