package protocol

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/shaddock/shaddock/internal/jsjson"
)

// Dictionary maps routes to the 2-byte codes Pomelo sends instead of route
// strings. It is immutable once built and safe for concurrent use; a nil
// *Dictionary is an empty one.
type Dictionary struct {
	codes   map[string]uint16
	routes  []string // routes[code-1]
	order   []string // routes in the order JavaScript lists them as object keys
	version string
}

// NewDictionary assigns codes 1..n to routes in the given order. Pomelo gives
// handler routes codes in sorted order, then appends the routes of
// dictionary.json; callers choose the order.
func NewDictionary(routes []string) (*Dictionary, error) {
	if len(routes) > 0xffff {
		return nil, fmt.Errorf("protocol: dictionary of %d routes exceeds 65535", len(routes))
	}
	d := &Dictionary{codes: make(map[string]uint16, len(routes)), routes: make([]string, 0, len(routes))}
	for _, r := range routes {
		if r == "" {
			return nil, fmt.Errorf("protocol: empty route in dictionary")
		}
		if len(r) > maxRouteLen {
			return nil, fmt.Errorf("%w: %q", ErrRouteTooLong, r)
		}
		if _, dup := d.codes[r]; dup {
			return nil, fmt.Errorf("protocol: route %q twice in dictionary", r)
		}
		d.routes = append(d.routes, r)
		d.codes[r] = uint16(len(d.routes))
	}
	d.order = jsjson.KeyOrder(d.routes)
	// The version lets a client that cached the dictionary skip it in the
	// handshake. Pomelo's is the md5, base64, of JSON.stringify(dict); the
	// same text here gives the same version, so a client that cached
	// Pomelo's dictionary keeps it against shaddock and the other way round.
	sum := md5.Sum(d.AppendJSON(nil))
	d.version = base64.StdEncoding.EncodeToString(sum[:])
	return d, nil
}

// AppendJSON appends the dictionary as Pomelo's {route: code} object, in
// the text JSON.stringify gives for it (keys in JavaScript's order).
func (d *Dictionary) AppendJSON(dst []byte) []byte {
	if d == nil {
		return append(dst, '{', '}')
	}
	dst = append(dst, '{')
	for i, r := range d.order {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsjson.AppendString(dst, r)
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, uint64(d.codes[r]), 10)
	}
	return append(dst, '}')
}

// AppendCodesJSON appends Pomelo's {code: route} object (its handshake's
// codeToRoute), codes ascending as JavaScript lists integer keys.
func (d *Dictionary) AppendCodesJSON(dst []byte) []byte {
	dst = append(dst, '{')
	var routes []string
	if d != nil {
		routes = d.routes
	}
	for i, r := range routes {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, int64(i+1), 10)
		dst = append(dst, '"', ':')
		dst = jsjson.AppendString(dst, r)
	}
	return append(dst, '}')
}

// DictionaryFromCodes rebuilds a dictionary from the {route: code} object a
// server sends in its handshake. Codes must be exactly 1..n.
func DictionaryFromCodes(codes map[string]uint16) (*Dictionary, error) {
	routes := make([]string, len(codes))
	for r, c := range codes {
		if c == 0 || int(c) > len(codes) || routes[c-1] != "" {
			return nil, fmt.Errorf("protocol: dictionary codes are not 1..%d (route %q has %d)", len(codes), r, c)
		}
		routes[c-1] = r
	}
	return NewDictionary(routes)
}

// UnmarshalJSON decodes Pomelo's {route: code} object.
func (d *Dictionary) UnmarshalJSON(b []byte) error {
	var codes map[string]uint16
	if err := json.Unmarshal(b, &codes); err != nil {
		return fmt.Errorf("protocol: dictionary: %w", err)
	}
	nd, err := DictionaryFromCodes(codes)
	if err != nil {
		return err
	}
	*d = *nd
	return nil
}

// Code returns the code of route, if it has one.
func (d *Dictionary) Code(route string) (uint16, bool) {
	if d == nil {
		return 0, false
	}
	c, ok := d.codes[route]
	return c, ok
}

// Route returns the route for code, if it has one.
func (d *Dictionary) Route(code uint16) (string, bool) {
	if d == nil || code == 0 || int(code) > len(d.routes) {
		return "", false
	}
	return d.routes[code-1], true
}

// Len is the number of routes.
func (d *Dictionary) Len() int {
	if d == nil {
		return 0
	}
	return len(d.routes)
}

// Routes returns the routes in code order (a copy).
func (d *Dictionary) Routes() []string {
	if d == nil {
		return nil
	}
	return append([]string(nil), d.routes...)
}

// Version identifies the dictionary's content.
func (d *Dictionary) Version() string {
	if d == nil {
		return ""
	}
	return d.version
}

// intern returns the dictionary's copy of a route when it knows it, so that
// routes sent as strings do not allocate per message; otherwise a new string.
func (d *Dictionary) intern(b []byte) string {
	if d != nil {
		if c, ok := d.codes[string(b)]; ok { // no allocation for the lookup
			return d.routes[c-1]
		}
	}
	return string(b)
}

// MarshalJSON encodes the dictionary as Pomelo's {route: code} object
// (AppendJSON).
func (d *Dictionary) MarshalJSON() ([]byte, error) {
	return d.AppendJSON(nil), nil
}
