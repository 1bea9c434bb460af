package pomelopb

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/shaddock/shaddock/internal/jsjson"
)

// Protos is a game's parsed server protos (for what the server sends:
// responses and pushes, by route) and client protos (for what clients send:
// requests and notifies, by route). It is immutable and safe for concurrent
// use. A nil *Protos has no protos.
type Protos struct {
	server, client *file
	version        string
	handshake      []byte // {"server":…,"client":…,"version":…}
}

// file is one parsed protos file: its messages by top-level key (routes,
// and "message X" entries other messages refer to).
type file struct {
	keys []string // top-level keys in JavaScript's order
	msgs map[string]*Message
}

// Message is the proto of one message.
type Message struct {
	name     string   // the key it was defined under, for errors
	fields   []*field // in JavaScript's key order
	byName   map[string]*field
	byTag    map[uint32]*field
	nested   []string // keys of nested, in JavaScript's order
	nestedBy map[string]*Message
	required int // number of required fields; they come first in reqIndex order
}

type field struct {
	name   string
	option string // "required", "optional" or "repeated"
	typ    string // as written: "uInt32", "string", "Item", ...
	kind   kind
	msg    *Message // kind == kindMessage
	tag    uint32
	key    []byte // the tag and wire type, encoded
	req    int    // index among the required fields, -1 if not required
	idx    int    // position in its message's fields
}

type kind uint8

const (
	kindUInt32 kind = iota
	kindSInt32      // also int32: pomelo-protobuf zigzags both
	kindFloat
	kindDouble
	kindString
	kindMessage
)

// simple reports whether a repeated field of kind k is written packed
// (tag, count, values), as pomelo-protobuf's util.isSimpleType decides.
func (k kind) simple() bool { return k <= kindDouble }

func (k kind) wireType() byte {
	switch k {
	case kindUInt32, kindSInt32:
		return 0
	case kindDouble:
		return 1
	case kindFloat:
		return 5
	}
	return 2
}

var scalarKinds = map[string]kind{
	"uInt32": kindUInt32, "sInt32": kindSInt32, "int32": kindSInt32,
	"float": kindFloat, "double": kindDouble, "string": kindString,
}

// maxTag keeps tag<<3 within JavaScript's 32-bit shift, as pomelo-protobuf
// computes it.
const maxTag = 1<<28 - 1

// Parse reads protos in Pomelo's JSON format: server (serverProtos.json) and
// client (clientProtos.json). A nil argument stands for a missing file, as
// Pomelo treats one. The version is Pomelo's: the md5, base64, of the JSON
// text of the parsed client protos followed by that of the server protos, or
// "" when both are missing; clients that cached protos from Pomelo (or
// shaddock) with the same content are not sent them again.
func Parse(server, client []byte) (*Protos, error) {
	p := &Protos{}
	var err error
	if p.server, err = parseFile(server); err != nil {
		return nil, fmt.Errorf("pomelopb: server protos: %w", err)
	}
	if p.client, err = parseFile(client); err != nil {
		return nil, fmt.Errorf("pomelopb: client protos: %w", err)
	}
	if server != nil || client != nil {
		text := p.client.appendParsed(nil)
		text = p.server.appendParsed(text)
		sum := md5.Sum(text)
		p.version = base64.StdEncoding.EncodeToString(sum[:])
	}
	p.handshake = p.appendHandshake(nil)
	return p, nil
}

// ParseHandshake reads the protos a server sent in its handshake
// (sys.protos: the parsed form, {"server":…,"client":…,"version":…}), as a
// client does to encode its requests and decode what it receives.
func ParseHandshake(protos []byte) (*Protos, error) {
	var top struct {
		Server, Client json.RawMessage
		Version        json.RawMessage
	}
	if err := json.Unmarshal(protos, &top); err != nil {
		return nil, fmt.Errorf("pomelopb: handshake protos: %w", err)
	}
	p := &Protos{handshake: append([]byte(nil), protos...)}
	var err error
	if p.server, err = parseParsedFile(top.Server); err != nil {
		return nil, fmt.Errorf("pomelopb: handshake server protos: %w", err)
	}
	if p.client, err = parseParsedFile(top.Client); err != nil {
		return nil, fmt.Errorf("pomelopb: handshake client protos: %w", err)
	}
	// Pomelo's version is a string; its JS client also accepts a number.
	var v any
	if len(top.Version) > 0 && json.Unmarshal(top.Version, &v) == nil {
		switch v := v.(type) {
		case string:
			p.version = v
		case float64:
			p.version = strconv.FormatFloat(v, 'f', -1, 64)
		}
	}
	return p, nil
}

// Version is the protos' version, offered by clients as sys.protoVersion.
func (p *Protos) Version() string {
	if p == nil {
		return ""
	}
	return p.version
}

// HandshakeJSON is the sys.protos object of a handshake answer, byte for
// byte what Pomelo sends: {"server":…,"client":…,"version":…}, the protos in
// pomelo-protobuf's parsed form.
func (p *Protos) HandshakeJSON() []byte { return p.handshake }

// Server returns the proto of what the server sends on route (a response
// to a request of that route, or a push), nil if the route has none.
func (p *Protos) Server(route string) *Message {
	if p == nil {
		return nil
	}
	return p.server.msgs[route]
}

// Client returns the proto of what clients send on route, nil if none.
func (p *Protos) Client(route string) *Message {
	if p == nil {
		return nil
	}
	return p.client.msgs[route]
}

// Routes returns the top-level keys with a server proto and those with a
// client proto ("message X" entries included), in the files' order.
func (p *Protos) Routes() (server, client []string) {
	if p == nil {
		return nil, nil
	}
	return append([]string(nil), p.server.keys...), append([]string(nil), p.client.keys...)
}

func (p *Protos) appendHandshake(b []byte) []byte {
	b = append(b, `{"server":`...)
	b = p.server.appendParsed(b)
	b = append(b, `,"client":`...)
	b = p.client.appendParsed(b)
	b = append(b, `,"version":`...)
	b = jsjson.AppendString(b, p.version)
	return append(b, '}')
}

// member is one key of a JSON object with its value, the last one given
// for the key, as JSON.parse keeps it.
type member struct {
	key string
	val json.RawMessage
}

// objectMembers reads a JSON object's members in JavaScript's order: keys in
// the order they first appear, array indices first, each with its last value.
func objectMembers(raw []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object, not %s", describe(raw))
	}
	vals := map[string]json.RawMessage{}
	var keys []string
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := vals[k]; !dup {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the JSON object")
	}
	out := make([]member, 0, len(keys))
	for _, k := range jsjson.KeyOrder(keys) {
		out = append(out, member{k, vals[k]})
	}
	return out, nil
}

func describe(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 20 {
		raw = append(raw[:17:17], "..."...)
	}
	return strconv.Quote(string(raw))
}

// parseFile parses one protos file in Pomelo's JSON format.
func parseFile(raw []byte) (*file, error) {
	f := &file{msgs: map[string]*Message{}}
	if raw == nil {
		return f, nil
	}
	members, err := objectMembers(raw)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		msg, err := parseMessage(m.key, m.val)
		if err != nil {
			return nil, err
		}
		f.keys = append(f.keys, m.key)
		f.msgs[m.key] = msg
	}
	return f, f.resolve()
}

// parseMessage parses one message in Pomelo's format ("option type name":
// tag, "message Name": {...}), as pomelo-protobuf's parser does, refusing
// what it would silently skip.
func parseMessage(name string, raw json.RawMessage) (*Message, error) {
	members, err := objectMembers(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m := newMessage(name)
	for _, mem := range members {
		parts := strings.Split(mem.key, " ")
		switch {
		case parts[0] == "message" && len(parts) == 2 && parts[1] != "":
			if _, dup := m.nestedBy[parts[1]]; dup {
				return nil, fmt.Errorf("%s: message %s defined twice", name, parts[1])
			}
			nested, err := parseMessage(name+"."+parts[1], mem.val)
			if err != nil {
				return nil, err
			}
			m.nested = append(m.nested, parts[1])
			m.nestedBy[parts[1]] = nested
		case len(parts) == 3 && (parts[0] == "required" || parts[0] == "optional" || parts[0] == "repeated") &&
			parts[1] != "" && parts[2] != "":
			tag, err := parseTag(mem.val)
			if err != nil {
				return nil, fmt.Errorf("%s: %q: %w", name, mem.key, err)
			}
			if err := m.add(&field{name: parts[2], option: parts[0], typ: parts[1], tag: tag}); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s: key %q is neither \"required|optional|repeated TYPE NAME\" nor \"message NAME\"", name, mem.key)
		}
	}
	return m, nil
}

func parseTag(raw json.RawMessage) (uint32, error) {
	f, err := strconv.ParseFloat(string(bytes.TrimSpace(raw)), 64)
	if err != nil || f != math.Trunc(f) || f < 1 || f > maxTag {
		return 0, fmt.Errorf("tag %s is not an integer from 1 to %d", describe(raw), maxTag)
	}
	return uint32(f), nil
}

func newMessage(name string) *Message {
	return &Message{name: name, byName: map[string]*field{}, byTag: map[uint32]*field{}, nestedBy: map[string]*Message{}}
}

// add appends a field, refusing a name or tag used twice.
func (m *Message) add(f *field) error {
	if f.name == "__messages" || f.name == "__tags" {
		return fmt.Errorf("%s: field name %q is reserved by pomelo-protobuf", m.name, f.name)
	}
	if _, dup := m.byName[f.name]; dup {
		return fmt.Errorf("%s: field %s defined twice", m.name, f.name)
	}
	if other, dup := m.byTag[f.tag]; dup {
		return fmt.Errorf("%s: tag %d used by %s and %s", m.name, f.tag, other.name, f.name)
	}
	f.req, f.idx = -1, len(m.fields)
	m.fields = append(m.fields, f)
	m.byName[f.name] = f
	m.byTag[f.tag] = f
	return nil
}

// resolve gives every field its kind: a scalar, or a message found where
// pomelo-protobuf looks (the containing message's nested messages, then the
// file's "message X" entries), and numbers the required fields.
func (f *file) resolve() error {
	seen := map[*Message]bool{}
	var walk func(m *Message) error
	walk = func(m *Message) error {
		if seen[m] {
			return nil
		}
		seen[m] = true
		for _, fd := range m.fields {
			if k, ok := scalarKinds[fd.typ]; ok {
				fd.kind = k
			} else if nm := m.nestedBy[fd.typ]; nm != nil {
				fd.kind, fd.msg = kindMessage, nm
			} else if gm := f.msgs["message "+fd.typ]; gm != nil {
				fd.kind, fd.msg = kindMessage, gm
			} else {
				return fmt.Errorf("%s: field %s has type %q, which pomelo-protobuf cannot encode (types: uInt32, sInt32, int32, float, double, string, or a message)", m.name, fd.name, fd.typ)
			}
			fd.key = appendUvarint(nil, uint64(fd.tag)<<3|uint64(fd.kind.wireType()))
			if fd.option == "required" {
				fd.req = m.required
				m.required++
			}
		}
		for _, n := range m.nested {
			if err := walk(m.nestedBy[n]); err != nil {
				return err
			}
		}
		return nil
	}
	for _, k := range f.keys {
		if err := walk(f.msgs[k]); err != nil {
			return err
		}
	}
	return nil
}

// appendParsed appends the file in pomelo-protobuf's parsed form, as
// JSON.stringify writes it: per message, each field {option, type, tag},
// then __messages (nested messages) and __tags ({tag: name}).
func (f *file) appendParsed(b []byte) []byte {
	b = append(b, '{')
	for i, k := range f.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsjson.AppendString(b, k)
		b = append(b, ':')
		b = f.msgs[k].appendParsed(b)
	}
	return append(b, '}')
}

func (m *Message) appendParsed(b []byte) []byte {
	b = append(b, '{')
	names := make([]string, len(m.fields))
	for i, fd := range m.fields {
		names[i] = fd.name
	}
	for _, name := range jsjson.KeyOrder(names) {
		fd := m.byName[name]
		b = jsjson.AppendString(b, fd.name)
		b = append(b, `:{"option":`...)
		b = jsjson.AppendString(b, fd.option)
		b = append(b, `,"type":`...)
		b = jsjson.AppendString(b, fd.typ)
		b = append(b, `,"tag":`...)
		b = strconv.AppendUint(b, uint64(fd.tag), 10)
		b = append(b, "},"...)
	}
	b = append(b, `"__messages":{`...)
	for i, n := range jsjson.KeyOrder(m.nested) {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsjson.AppendString(b, n)
		b = append(b, ':')
		b = m.nestedBy[n].appendParsed(b)
	}
	b = append(b, `},"__tags":{`...)
	for i, t := range m.tagOrder() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendUint(b, uint64(t), 10)
		b = append(b, `":`...)
		b = jsjson.AppendString(b, m.byTag[t].name)
	}
	return append(b, "}}"...)
}

// tagOrder returns the tags ascending: JavaScript lists integer keys so.
func (m *Message) tagOrder() []uint32 {
	tags := make([]uint32, 0, len(m.fields))
	for _, f := range m.fields {
		tags = append(tags, f.tag)
	}
	for i := 1; i < len(tags); i++ {
		for j := i; j > 0 && tags[j] < tags[j-1]; j-- {
			tags[j], tags[j-1] = tags[j-1], tags[j]
		}
	}
	return tags
}

// parseParsedFile reads one file in the parsed form a handshake carries.
func parseParsedFile(raw json.RawMessage) (*file, error) {
	f := &file{msgs: map[string]*Message{}}
	if len(raw) == 0 || string(raw) == "null" {
		return f, nil
	}
	members, err := objectMembers(raw)
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		msg, err := parseParsedMessage(m.key, m.val)
		if err != nil {
			return nil, err
		}
		f.keys = append(f.keys, m.key)
		f.msgs[m.key] = msg
	}
	return f, f.resolve()
}

func parseParsedMessage(name string, raw json.RawMessage) (*Message, error) {
	members, err := objectMembers(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	m := newMessage(name)
	for _, mem := range members {
		switch mem.key {
		case "__tags":
			continue // derived from the fields
		case "__messages":
			nested, err := objectMembers(mem.val)
			if err != nil {
				return nil, fmt.Errorf("%s: __messages: %w", name, err)
			}
			for _, n := range nested {
				nm, err := parseParsedMessage(name+"."+n.key, n.val)
				if err != nil {
					return nil, err
				}
				m.nested = append(m.nested, n.key)
				m.nestedBy[n.key] = nm
			}
			continue
		}
		var fd struct {
			Option string          `json:"option"`
			Type   string          `json:"type"`
			Tag    json.RawMessage `json:"tag"`
		}
		if err := json.Unmarshal(mem.val, &fd); err != nil {
			return nil, fmt.Errorf("%s: field %s: %w", name, mem.key, err)
		}
		if fd.Option != "required" && fd.Option != "optional" && fd.Option != "repeated" {
			return nil, fmt.Errorf("%s: field %s: option %q", name, mem.key, fd.Option)
		}
		tag, err := parseTag(fd.Tag)
		if err != nil {
			return nil, fmt.Errorf("%s: field %s: %w", name, mem.key, err)
		}
		if err := m.add(&field{name: mem.key, option: fd.Option, typ: fd.Type, tag: tag}); err != nil {
			return nil, err
		}
	}
	return m, nil
}
