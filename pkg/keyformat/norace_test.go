//go:build !race

package keyformat

const raceEnabled = false
