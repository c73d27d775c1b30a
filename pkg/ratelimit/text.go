package ratelimit

import (
	"errors"
	"strconv"
	"strings"
)

// UnmarshalText reads a Limit as configuration writes it: "<rate>/s:<burst>" ("10/s:100":
// 10 per second, bursts of 100), or "off" for no limit (the zero Limit). A rate must be
// positive and a burst at least 1. Settings read from the environment use it
// (pkg/settings).
func (l *Limit) UnmarshalText(text []byte) error {
	v := string(text)
	if v == "off" {
		*l = Limit{}
		return nil
	}
	rate, burst, ok := strings.Cut(v, ":")
	rate, perSecond := strings.CutSuffix(rate, "/s")
	r, err1 := strconv.ParseFloat(rate, 64)
	b, err2 := strconv.Atoi(burst)
	if !ok || !perSecond || err1 != nil || err2 != nil || !(r > 0) || b < 1 {
		return errors.New("want <rate>/s:<burst>, e.g. 10/s:100, or off")
	}
	*l = Limit{PerSecond: r, Burst: b}
	return nil
}
