package config

import (
	"strconv"
	"strings"
)

// BurntSushi/toml keeps key positions private, so this file builds its own
// index from the raw text: for every table header, key and array element, the
// line where it first appears. It runs only on text the TOML parser has
// accepted, but never loops or panics on any input.
//
// Paths are the decoded structure's: keys, with an element index after each
// array (of tables or inline). "[[a.b]]" twice gives a.b#0 and a.b#1, and a
// key in the second one is a.b#1.key.

type lineIndex struct {
	lines map[string]lineEntry
}

type lineEntry struct {
	line     int
	explicit bool // defined by its own header or key, not as a prefix
}

const pathSep = "\x1f"

// elem is the path component for element i of an array.
func elem(i int) string { return "\x00" + strconv.Itoa(i) }

func joinPath(path []string) string { return strings.Join(path, pathSep) }

// line returns the line of path, or of its longest indexed prefix, or 0.
func (x *lineIndex) line(path ...string) int {
	for n := len(path); n > 0; n-- {
		if e, ok := x.lines[joinPath(path[:n])]; ok {
			return e.line
		}
	}
	return 0
}

func indexLines(data []byte) *lineIndex {
	s := &lineScanner{
		data:   data,
		line:   1,
		idx:    &lineIndex{lines: make(map[string]lineEntry)},
		arrays: make(map[string]int),
	}
	s.run()
	return s.idx
}

type lineScanner struct {
	data   []byte
	pos    int
	line   int
	idx    *lineIndex
	arrays map[string]int // [[header]] path -> elements seen so far
	table  []string       // resolved path of the current table
}

func (s *lineScanner) eof() bool { return s.pos >= len(s.data) }

func (s *lineScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.data[s.pos]
}

func (s *lineScanner) hasPrefix(p string) bool {
	return strings.HasPrefix(string(s.data[s.pos:min(len(s.data), s.pos+len(p))]), p)
}

// adv moves n bytes forward, counting newlines.
func (s *lineScanner) adv(n int) {
	for ; n > 0 && !s.eof(); n-- {
		if s.data[s.pos] == '\n' {
			s.line++
		}
		s.pos++
	}
}

func (s *lineScanner) record(path []string, line int, explicit bool) {
	for n := 1; n <= len(path); n++ {
		k := joinPath(path[:n])
		ex := explicit && n == len(path)
		if e, ok := s.idx.lines[k]; !ok || (ex && !e.explicit) {
			s.idx.lines[k] = lineEntry{line: line, explicit: ex}
		}
	}
}

func (s *lineScanner) skipSpaces() {
	for !s.eof() && (s.peek() == ' ' || s.peek() == '\t') {
		s.adv(1)
	}
}

// skipBlank skips spaces, newlines and comments.
func (s *lineScanner) skipBlank() {
	for !s.eof() {
		switch s.peek() {
		case ' ', '\t', '\r', '\n':
			s.adv(1)
		case '#':
			s.skipComment()
		default:
			return
		}
	}
}

func (s *lineScanner) skipComment() {
	for !s.eof() && s.peek() != '\n' {
		s.adv(1)
	}
}

func (s *lineScanner) run() {
	for {
		s.skipBlank()
		if s.eof() {
			return
		}
		start := s.pos
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyValue(s.table)
		}
		s.skipSpaces()
		if s.peek() == '#' {
			s.skipComment()
		}
		if s.pos == start {
			s.adv(1)
		}
	}
}

// resolve turns a header's key path into a decoded path, descending into the
// last element of every array of tables on the way.
func (s *lineScanner) resolve(keys []string) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k)
		if n, ok := s.arrays[joinPath(out)]; ok {
			out = append(out, elem(n-1))
		}
	}
	return out
}

func (s *lineScanner) header() {
	line := s.line
	array := s.hasPrefix("[[")
	if array {
		s.adv(2)
	} else {
		s.adv(1)
	}
	keys := s.keyPath()
	s.skipSpaces()
	if array && s.hasPrefix("]]") {
		s.adv(2)
	} else if s.peek() == ']' {
		s.adv(1)
	}
	if len(keys) == 0 {
		return
	}
	var path []string
	if array {
		path = append(s.resolve(keys[:len(keys)-1]), keys[len(keys)-1])
		k := joinPath(path)
		s.arrays[k]++
		path = append(path, elem(s.arrays[k]-1))
	} else {
		path = s.resolve(keys)
	}
	s.record(path, line, true)
	s.table = path
}

func (s *lineScanner) keyValue(base []string) {
	line := s.line
	keys := s.keyPath()
	if len(keys) == 0 {
		return
	}
	s.skipSpaces()
	if s.peek() == '=' {
		s.adv(1)
	}
	path := append(append([]string(nil), base...), keys...)
	s.record(path, line, true)
	s.skipSpaces()
	s.value(path)
}

// keyPath reads a dotted key: bare or quoted parts separated by dots.
func (s *lineScanner) keyPath() []string {
	var keys []string
	for {
		s.skipSpaces()
		switch c := s.peek(); c {
		case '"':
			start := s.pos
			s.basicString()
			raw := string(s.data[start:s.pos])
			if k, err := strconv.Unquote(raw); err == nil {
				keys = append(keys, k)
			} else {
				keys = append(keys, strings.Trim(raw, `"`))
			}
		case '\'':
			s.adv(1)
			start := s.pos
			for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
				s.adv(1)
			}
			keys = append(keys, string(s.data[start:s.pos]))
			if s.peek() == '\'' {
				s.adv(1)
			}
		default:
			start := s.pos
			for !s.eof() && !strings.ContainsRune(" \t\r\n=.[]{},#\"'", rune(s.peek())) {
				s.adv(1)
			}
			if s.pos == start {
				return keys
			}
			keys = append(keys, string(s.data[start:s.pos]))
		}
		s.skipSpaces()
		if s.peek() != '.' {
			return keys
		}
		s.adv(1)
	}
}

// basicString skips a single-line "..." string, escapes included.
func (s *lineScanner) basicString() {
	s.adv(1)
	for !s.eof() {
		switch s.peek() {
		case '\\':
			s.adv(2)
		case '"':
			s.adv(1)
			return
		case '\n':
			return
		default:
			s.adv(1)
		}
	}
}

// multiString skips a """...""" or ”'...”' string; q is the quote.
func (s *lineScanner) multiString(q byte) {
	s.adv(3)
	closing := strings.Repeat(string(q), 3)
	for !s.eof() {
		if q == '"' && s.peek() == '\\' {
			s.adv(2)
			continue
		}
		if s.hasPrefix(closing) {
			s.adv(3)
			// Up to two more quotes belong to the content: """a"""".
			for i := 0; i < 2 && s.peek() == q; i++ {
				s.adv(1)
			}
			return
		}
		s.adv(1)
	}
}

func (s *lineScanner) value(path []string) {
	switch {
	case s.hasPrefix(`"""`):
		s.multiString('"')
	case s.hasPrefix(`'''`):
		s.multiString('\'')
	case s.peek() == '"':
		s.basicString()
	case s.peek() == '\'':
		s.adv(1)
		for !s.eof() && s.peek() != '\'' && s.peek() != '\n' {
			s.adv(1)
		}
		if s.peek() == '\'' {
			s.adv(1)
		}
	case s.peek() == '[':
		s.adv(1)
		for i := 0; ; {
			s.skipBlank()
			switch s.peek() {
			case 0:
				return
			case ']':
				s.adv(1)
				return
			case ',':
				s.adv(1)
				continue
			}
			p := append(append([]string(nil), path...), elem(i))
			s.record(p, s.line, true)
			start := s.pos
			s.value(p)
			if s.pos == start {
				s.adv(1)
			}
			i++
		}
	case s.peek() == '{':
		s.adv(1)
		for {
			s.skipBlank()
			switch s.peek() {
			case 0:
				return
			case '}':
				s.adv(1)
				return
			case ',':
				s.adv(1)
				continue
			}
			start := s.pos
			s.keyValue(path)
			if s.pos == start {
				s.adv(1)
			}
		}
	default:
		// Number, boolean or date-time (which may contain a space).
		for !s.eof() && !strings.ContainsRune(",]}\r\n#", rune(s.peek())) {
			s.adv(1)
		}
	}
}
