package jsjson

import (
	"slices"
	"testing"
)

// The expected texts are what Node 20 prints for JSON.stringify of the
// same values.
func TestAppendString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"a\"b\\c\x01\x1f\b\f\n\r\t</>&\u2028é😀\x7f", `"a\"b\\c\u0001\u001f\b\f\n\r\t</>&` + "\u2028é😀\x7f" + `"`},
		{"bad\xffbyte", "\"bad\ufffdbyte\""},
		{"\xe2\x82", "\"\ufffd\ufffd\""}, // truncated sequence: one U+FFFD per byte
	} {
		if got := string(AppendString(nil, c.in)); got != c.want {
			t.Errorf("AppendString(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestKeyOrder(t *testing.T) {
	// JSON.stringify({b:1,"10":2,"2":3,a:4,"01":5,"4294967295":6,"4294967294":7})
	// lists 2, 10, 4294967294, b, a, 01, 4294967295.
	in := []string{"b", "10", "2", "a", "01", "4294967295", "4294967294"}
	want := []string{"2", "10", "4294967294", "b", "a", "01", "4294967295"}
	if got := KeyOrder(in); !slices.Equal(got, want) {
		t.Fatalf("KeyOrder = %q, want %q", got, want)
	}
	for k, want := range map[string]bool{"0": true, "7": true, "00": false, "-1": false, "1.5": false, "": false, "4294967294": true, "4294967295": false, "99999999999": false, " 1": false} {
		if IsArrayIndex(k) != want {
			t.Errorf("IsArrayIndex(%q) = %v", k, !want)
		}
	}
}
