// Package jsjson writes JSON text the way JavaScript's JSON.stringify writes
// it: its string escaping and its key order for objects.
//
// Pomelo identifies a route dictionary and a set of protos by the md5 of
// their JSON.stringify text, and sends handshake answers as that text. A
// server that must give Pomelo clients byte-identical answers and versions
// cannot use encoding/json for these: it escapes <, > and & and sorts map
// keys, where JavaScript keeps insertion order except that keys which are
// array indices come first, in numeric order.
//
// It is not a general JSON encoder: callers write the structure themselves
// and use this package for strings and for the order of keys.
package jsjson

import (
	"slices"
	"strconv"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string literal, escaped as
// JSON.stringify escapes it: the quote, the backslash and the control
// characters below U+0020 (with the short forms \b \f \n \r \t, the rest as
// \u00xx in lower-case hex); every other character as it is. Bytes that are
// not UTF-8 become U+FFFD, as when JavaScript decodes them.
func AppendString(dst []byte, s string) []byte { return AppendBytes(dst, []byte(s)) }

// AppendBytes is AppendString for UTF-8 text held in a byte slice.
func AppendBytes(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// IsArrayIndex reports whether JavaScript treats key as an array index
// (a canonical decimal integer below 2³²−1), the keys an object lists
// first, in numeric order.
func IsArrayIndex(key string) bool {
	if key == "" || len(key) > 10 || (key[0] == '0' && len(key) > 1) {
		return false
	}
	n, err := strconv.ParseUint(key, 10, 64)
	return err == nil && n < 1<<32-1
}

// KeyOrder returns the order in which JavaScript lists the keys of an
// object whose keys were added in the given order: array indices first in
// numeric order, then the other keys in insertion order. keys must be
// distinct. The result is a new slice.
func KeyOrder(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if IsArrayIndex(k) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		if len(a) != len(b) { // canonical: no leading zeros
			return len(a) - len(b)
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	for _, k := range keys {
		if !IsArrayIndex(k) {
			out = append(out, k)
		}
	}
	return out
}
