package keyformat

import (
	"encoding/json"
	"math/big"
	"testing"
	"time"
)

// The float formula in BodyLen must agree with exact integer arithmetic: the
// smallest n with 62^n >= 2^(8*bytes).
func TestBodyLenBase62Exact(t *testing.T) {
	for b := minRandomBytes; b <= maxRandomBytes; b++ {
		want := 0
		limit := new(big.Int).Lsh(big.NewInt(1), uint(8*b))
		for p := big.NewInt(1); p.Cmp(limit) < 0; want++ {
			p.Mul(p, big.NewInt(62))
		}
		typ := Type{Encoding: EncodingBase62, RandomBytes: b}
		if got := typ.BodyLen(); got != want {
			t.Errorf("BodyLen(%d bytes) = %d, want %d", b, got, want)
		}
	}
}

func TestLengths(t *testing.T) {
	tests := []struct {
		typ          Type
		prefix       string
		body, keyLen int
	}{
		{Type{Encoding: EncodingBase62, RandomBytes: 32, Checksum: true}, "lk_ing_", 43, 7 + 43 + 6},
		{Type{Encoding: EncodingHex, RandomBytes: 12}, "dt_", 24, 3 + 24},
		{Type{Encoding: EncodingHex, RandomBytes: 32}, "lqt_", 64, 4 + 64},
		{Type{Encoding: "base64", RandomBytes: 32}, "x_", 0, 2},
	}
	for _, tt := range tests {
		if got := tt.typ.BodyLen(); got != tt.body {
			t.Errorf("%+v: BodyLen = %d, want %d", tt.typ, got, tt.body)
		}
		if got := tt.typ.KeyLen(tt.prefix); got != tt.keyLen {
			t.Errorf("%+v: KeyLen(%q) = %d, want %d", tt.typ, tt.prefix, got, tt.keyLen)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{24 * time.Hour, `"24h"`},
		{720 * time.Hour, `"720h"`},
		{90 * time.Minute, `"1h30m"`},
		{30 * time.Second, `"30s"`},
		{10 * time.Minute, `"10m"`},
		{1500 * time.Millisecond, `"1.5s"`},
		{0, `"0s"`},
	} {
		b, err := json.Marshal(Duration{tt.d})
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("Marshal(%v) = %s, want %s", tt.d, b, tt.want)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back.Duration != tt.d {
			t.Errorf("round trip of %s = %v, %v", b, back.Duration, err)
		}
	}
	var d Duration
	for _, bad := range []string{`"1 day"`, `86400`, `true`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}
