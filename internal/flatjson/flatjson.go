// Package flatjson decodes the JSON body most game requests are, one object
// of strings, integers and booleans, into a struct several times faster
// than encoding/json, and hands every other body to encoding/json.
//
// A chat server spent a fifth of its CPU in json.Unmarshal of one small
// request per message: encoding/json validates the whole text in one pass,
// then decodes it in a second through a general reflective state machine.
// A flat body needs neither: one pass over the bytes, each key compared
// with the struct's few field names, each value parsed for its field's
// kind. docs/json.md has the measurements and why no third-party codec.
//
// The fast path accepts a strict subset and gives up on anything else (an
// escape in a string, a nested value, a null, a key that only matches a
// field by case folding, a number that is not a plain integer), and then
// encoding/json decodes the body from the start. So the result is always
// what json.Unmarshal gives: FuzzSameAsEncodingJSON checks exactly that.
package flatjson

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// customDecoded and customEncoded report whether encoding/json decodes or
// encodes t with a method of its own (UnmarshalJSON, UnmarshalText;
// MarshalJSON, MarshalText), which the fast paths must not bypass. The
// pointer's method set holds the value's too.
func customDecoded(t reflect.Type) bool { return implementsEither(t, jsonUnmarshaler, textUnmarshaler) }
func customEncoded(t reflect.Type) bool { return implementsEither(t, jsonMarshaler, textMarshaler) }

func implementsEither(t, a, b reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return pt.Implements(a) || pt.Implements(b)
}

// Decoder decodes JSON into values of type T. Make one per type with For
// and keep it: it holds the type's field table. A Decoder is safe for
// concurrent use.
type Decoder[T any] struct {
	fields []field
	flat   bool // T is a struct the fast path can fill
}

type kind uint8

const (
	kString kind = iota
	kBool
	kInt
	kUint
)

type field struct {
	name      string
	index     int
	kind      kind
	bits      int  // integer size, for the overflow check
	omitEmpty bool // omitempty: not encoded when zero
}

// For returns the decoder for T. T's fast path is used when T is a struct
// whose exported fields are strings, booleans and integers, without
// embedded structs, ",string" options, two fields of one JSON name, or
// UnmarshalJSON or UnmarshalText methods (on T or a field's type); other
// types always decode with encoding/json.
func For[T any]() *Decoder[T] {
	fields, ok := fieldsOf(reflect.TypeFor[T](), customDecoded)
	return &Decoder[T]{fields: fields, flat: ok}
}

// fieldsOf returns the field table of a flat struct type t, and false when
// t is not one (for a coder whose encoding/json counterpart would call a
// method of its own for the types custom reports).
func fieldsOf(t reflect.Type, custom func(reflect.Type) bool) ([]field, bool) {
	if t.Kind() != reflect.Struct || custom(t) {
		return nil, false
	}
	var fields []field
	seen := map[string]bool{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil, false // embedded fields follow encoding/json's promotion rules: not here
		}
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		f := field{index: i}
		for o := range strings.SplitSeq(opts, ",") {
			switch o {
			case "string", "omitzero": // omitzero may call the type's IsZero
				return nil, false
			case "omitempty":
				f.omitEmpty = true
			}
		}
		if name == "" {
			name = sf.Name
		}
		if !plainName(name) || seen[name] || custom(sf.Type) {
			return nil, false
		}
		seen[name] = true
		f.name = name
		switch sf.Type.Kind() {
		case reflect.String:
			f.kind = kString
		case reflect.Bool:
			f.kind = kBool
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			f.kind, f.bits = kInt, sf.Type.Bits()
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.kind, f.bits = kUint, sf.Type.Bits()
		default:
			return nil, false
		}
		fields = append(fields, f)
	}
	return fields, true
}

// plainName reports whether a field name is one the fast path compares
// bytewise: ASCII letters, digits, '_' and '-'. Any other name (Unicode,
// which case folding may match from another spelling; punctuation, which
// encoding/json may reject as a tag) leaves the type to encoding/json.
func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Unmarshal decodes body into *v as json.Unmarshal(body, v) does, with the
// same result and, when body is not a flat object, the same error. After
// an error *v may hold part of the body, as after json.Unmarshal.
func (d *Decoder[T]) Unmarshal(body []byte, v *T) error {
	if d.flat && d.fast(body, reflect.ValueOf(v).Elem()) {
		return nil
	}
	return json.Unmarshal(body, v)
}

// fast decodes a flat object into rv and reports whether it could. When it
// could not, it may have set some fields, each to the value of a key that
// encoding/json, decoding the same body next, also sets it from.
func (d *Decoder[T]) fast(b []byte, rv reflect.Value) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		ks, ke, ascii := plainString(b, i+1)
		if ke < 0 || !ascii {
			return false
		}
		key := b[ks:ke]
		i = skipSpace(b, ke+1)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		if i = skipSpace(b, i+1); i >= len(b) {
			return false
		}
		f := d.field(key)
		if f == nil {
			if d.folds(key) {
				return false // encoding/json matches it case-insensitively
			}
			if i = skipValue(b, i); i < 0 {
				return false
			}
		} else if i = setValue(b, i, f, rv.Field(f.index)); i < 0 {
			return false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func (d *Decoder[T]) field(key []byte) *field {
	for j := range d.fields {
		if d.fields[j].name == string(key) {
			return &d.fields[j]
		}
	}
	return nil
}

// folds reports whether an ASCII key equals a field name but for case.
func (d *Decoder[T]) folds(key []byte) bool {
	for j := range d.fields {
		if strings.EqualFold(d.fields[j].name, string(key)) {
			return true
		}
	}
	return false
}

// setValue parses the value at b[i] for field f into fv and returns the
// index after it, or -1 if the value is not one the fast path takes.
func setValue(b []byte, i int, f *field, fv reflect.Value) int {
	switch f.kind {
	case kString:
		if b[i] != '"' {
			return -1
		}
		s, e, ascii := plainString(b, i+1)
		if e < 0 || !ascii && !utf8.Valid(b[s:e]) {
			return -1 // encoding/json would replace invalid UTF-8 with U+FFFD
		}
		fv.SetString(string(b[s:e]))
		return e + 1
	case kBool:
		switch {
		case hasWord(b, i, "true"):
			fv.SetBool(true)
			return i + 4
		case hasWord(b, i, "false"):
			fv.SetBool(false)
			return i + 5
		}
		return -1
	case kInt:
		e := plainInteger(b, i)
		if e < 0 {
			return -1
		}
		n, err := strconv.ParseInt(string(b[i:e]), 10, f.bits)
		if err != nil {
			return -1 // out of range: encoding/json reports it
		}
		fv.SetInt(n)
		return e
	case kUint:
		if b[i] == '-' {
			return -1
		}
		e := plainInteger(b, i)
		if e < 0 {
			return -1
		}
		n, err := strconv.ParseUint(string(b[i:e]), 10, f.bits)
		if err != nil {
			return -1
		}
		fv.SetUint(n)
		return e
	}
	return -1
}

// plainString scans a string's content from b[i] (after the opening
// quote) to its closing quote. It returns the content's bounds and whether
// it is all ASCII; e is -1 for a string with an escape or a control
// character, or no closing quote.
func plainString(b []byte, i int) (s, e int, ascii bool) {
	ascii = true
	for j := i; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i, j, ascii
		case c == '\\' || c < 0x20:
			return i, -1, false
		case c >= 0x80:
			ascii = false
		}
	}
	return i, -1, false
}

// skipValue skips a value of a key no field takes: a string, a number,
// true, false or null. It returns the index after it, or -1 for anything
// else, including a malformed value.
func skipValue(b []byte, i int) int {
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i+1)
	case c == '-' || '0' <= c && c <= '9':
		return skipNumber(b, i)
	case hasWord(b, i, "true"), hasWord(b, i, "null"):
		return i + 4
	case hasWord(b, i, "false"):
		return i + 5
	}
	return -1
}

// skipString skips a string's content and closing quote, escapes
// included, checking them as encoding/json does; invalid UTF-8 is allowed
// (encoding/json replaces it, and this value is dropped anyway).
func skipString(b []byte, i int) int {
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return -1
				}
				for _, h := range b[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 6
			default:
				return -1
			}
		default:
			i++
		}
	}
	return -1
}

// skipNumber skips a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) int {
	i = integerPart(b, i)
	if i < 0 {
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// plainInteger scans -?(0|[1-9][0-9]*) and returns the index after it, or
// -1 if there is none or a fraction or exponent follows it (a number
// encoding/json would not put into an integer field).
func plainInteger(b []byte, i int) int {
	e := integerPart(b, i)
	if e < 0 || e < len(b) && (b[e] == '.' || b[e] == 'e' || b[e] == 'E' || '0' <= b[e] && b[e] <= '9') {
		return -1
	}
	return e
}

// integerPart scans -?(0|[1-9][0-9]*) and returns the index after it, or -1.
func integerPart(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) || b[i] < '0' || b[i] > '9' {
		return -1
	}
	if b[i] == '0' {
		return i + 1
	}
	return digits(b, i+1)
}

func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

func hasWord(b []byte, i int, w string) bool {
	return len(b)-i >= len(w) && string(b[i:i+len(w)]) == w
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
