package rpc

import (
	"fmt"
	"testing"
)

// Values printed by npm crc 0.2.0 (the crc Pomelo 2.2.7 ships), e.g.
// node -e 'console.log(require("crc").crc32("u1"))'; it returns a signed
// 32-bit integer and hashes the low byte of each UTF-16 code unit.
func TestCRC32MatchesPomelo(t *testing.T) {
	tests := []struct {
		key  string
		want int32
	}{
		{"u1", 1112514422},
		{"user-42", 2097592435},
		{"123456789", -873187034},
		{"é", 198489425},
		{"中", -1747078152},
		{"a😀", -591646533},
		{"room-3", 1358588202},
		{"alice*room1", -1035336600},
	}
	for _, tt := range tests {
		if got := int32(CRC32(tt.key)); got != tt.want {
			t.Errorf("CRC32(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}

func TestPickIndexMatchesPomelo(t *testing.T) {
	// Math.abs(crc32(key)) % n in JavaScript.
	for _, tt := range []struct {
		key      string
		mod2, m3 int
	}{
		{"u1", 0, 2}, {"user-42", 1, 1}, {"123456789", 0, 2}, {"é", 1, 2},
		{"中", 0, 0}, {"a😀", 1, 0}, {"room-3", 0, 0}, {"alice*room1", 0, 0},
	} {
		if got := PickIndex(tt.key, 2); got != tt.mod2 {
			t.Errorf("PickIndex(%q, 2) = %d, want %d", tt.key, got, tt.mod2)
		}
		if got := PickIndex(tt.key, 3); got != tt.m3 {
			t.Errorf("PickIndex(%q, 3) = %d, want %d", tt.key, got, tt.m3)
		}
	}
	for i := 0; i < 1000; i++ {
		if p := PickIndex(fmt.Sprint("user", i), 3); p < 0 || p >= 3 {
			t.Fatalf("index %d out of range", p)
		}
	}
}
