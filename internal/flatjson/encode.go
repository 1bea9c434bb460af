package flatjson

import (
	"encoding/json"
	"reflect"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Encoder encodes values of one struct type as json.Marshal does, byte for
// byte, several times faster when the type is flat (strings, integers and
// booleans, as For's) and its strings need no escaping; anything else
// goes to json.Marshal. Safe for concurrent use.
type Encoder struct {
	typ    reflect.Type
	fields []field
	flat   bool
}

// NewEncoder returns the encoder for values of type t (or pointers to it).
func NewEncoder(t reflect.Type) *Encoder {
	fields, ok := fieldsOf(t, customEncoded)
	return &Encoder{typ: t, fields: fields, flat: ok}
}

// Marshal returns json.Marshal(v).
func (e *Encoder) Marshal(v any) ([]byte, error) {
	if e.flat {
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Pointer && !rv.IsNil() {
			rv = rv.Elem()
		}
		if rv.Type() == e.typ {
			if b, ok := e.appendFast(make([]byte, 0, 64), rv); ok {
				return b, nil
			}
		}
	}
	return json.Marshal(v)
}

// appendFast appends rv's encoding to b, or reports false for a string
// that needs escaping (json.Marshal then encodes the value).
func (e *Encoder) appendFast(b []byte, rv reflect.Value) ([]byte, bool) {
	b = append(b, '{')
	first := true
	for i := range e.fields {
		f := &e.fields[i]
		fv := rv.Field(f.index)
		if f.omitEmpty && fv.IsZero() {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, f.name...)
		b = append(b, '"', ':')
		switch f.kind {
		case kString:
			s := fv.String()
			if !plainText(s) {
				return nil, false
			}
			b = append(b, '"')
			b = append(b, s...)
			b = append(b, '"')
		case kBool:
			b = strconv.AppendBool(b, fv.Bool())
		case kInt:
			b = strconv.AppendInt(b, fv.Int(), 10)
		case kUint:
			b = strconv.AppendUint(b, fv.Uint(), 10)
		}
	}
	return append(b, '}'), true
}

// plainText reports whether json.Marshal writes s as it is between quotes:
// no quote, backslash or control character, none of the HTML characters
// it escapes (< > &), valid UTF-8 without U+2028 or U+2029.
func plainText(s string) bool {
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c >= 0x80:
			ascii = false
		}
	}
	if ascii {
		return true
	}
	for _, r := range s {
		if r == utf8.RuneError || r == '\u2028' || r == '\u2029' {
			return false // invalid UTF-8 (or a real U+FFFD: json.Marshal is as fast there)
		}
	}
	return true
}

// Encoders holds an Encoder per type, for values whose type is known only
// when they are encoded (a push's body). The zero value is ready to use.
type Encoders struct{ m sync.Map } // reflect.Type → *Encoder

// Marshal returns json.Marshal(v), through v's type's Encoder.
func (es *Encoders) Marshal(v any) ([]byte, error) {
	t := reflect.TypeOf(v)
	if t == nil {
		return json.Marshal(v)
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	e, ok := es.m.Load(t)
	if !ok {
		e, _ = es.m.LoadOrStore(t, NewEncoder(t))
	}
	return e.(*Encoder).Marshal(v)
}
