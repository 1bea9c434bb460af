// Package packedmap encodes a small map[string]string as bytes: the form in
// which a session's settings travel with every forwarded message.
//
// A protobuf map field costs its receiver a Go map and two strings per
// entry on every message (a fifth of a chat server's allocations), and its
// sender a sort-free walk of the map; the settings change rarely and are
// read once or twice per message. Packed, a frontend encodes them once per
// change and sends the same bytes with every message, and a backend reads
// a key by scanning them, allocating only the value it returns.
//
// The encoding is the entries sorted by key, each as the key's length
// (uvarint), the key, the value's length (uvarint), the value. Equal maps
// pack to equal bytes. Malformed input reads as if it ended at the fault.
package packedmap

import (
	"encoding/binary"
	"slices"
)

// Pack encodes m; nil when m is empty.
func Pack(m map[string]string) []byte {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	n := 0
	for k, v := range m {
		keys = append(keys, k)
		n += len(k) + len(v) + 2*binary.MaxVarintLen32
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, m[k])
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// next splits the string at the start of b off the rest; ok is false at
// the end of b or where it is malformed.
func next(b []byte) (s, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}

// Get returns the value of key in packed.
func Get(packed []byte, key string) (string, bool) {
	for b := packed; len(b) > 0; {
		k, rest, ok := next(b)
		if !ok {
			return "", false
		}
		v, rest, ok := next(rest)
		if !ok {
			return "", false
		}
		if string(k) == key { // no allocation: the conversion is only compared
			return string(v), true
		}
		b = rest
	}
	return "", false
}

// Len returns the number of entries in packed.
func Len(packed []byte) int {
	n := 0
	Range(packed, func(string, string) bool { n++; return true })
	return n
}

// Range calls fn for each entry of packed in key order, until fn returns
// false.
func Range(packed []byte, fn func(k, v string) bool) {
	for b := packed; len(b) > 0; {
		k, rest, ok := next(b)
		if !ok {
			return
		}
		v, rest, ok := next(rest)
		if !ok || !fn(string(k), string(v)) {
			return
		}
		b = rest
	}
}

// Map decodes packed into a new map; nil when it is empty.
func Map(packed []byte) map[string]string {
	if len(packed) == 0 {
		return nil
	}
	m := make(map[string]string)
	Range(packed, func(k, v string) bool { m[k] = v; return true })
	return m
}
