package rpc

import (
	"errors"
	"hash/crc32"
	"strconv"
	"unicode/utf16"

	"github.com/shaddock/shaddock/handler"
)

// CRC32 is the hash Pomelo's dispatcher uses (npm crc 0.2.0): CRC-32/IEEE
// over the low byte of each UTF-16 code unit of key. For ASCII keys it is the
// ordinary CRC-32 of the bytes.
func CRC32(key string) uint32 {
	ascii := true
	for i := 0; i < len(key); i++ {
		if key[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return crc32.ChecksumIEEE([]byte(key))
	}
	units := utf16.Encode([]rune(key))
	b := make([]byte, len(units))
	for i, u := range units {
		b[i] = byte(u)
	}
	return crc32.ChecksumIEEE(b)
}

// PickIndex returns abs(int32(crc32(key))) % n, computed in 64 bits as
// Pomelo's JavaScript does, so the same key lands on the same server index.
func PickIndex(key string, n int) int {
	h := int64(int32(CRC32(key)))
	if h < 0 {
		h = -h
	}
	return int(h % int64(n))
}

// ErrNoServer means no eligible server of the type exists.
var ErrNoServer = errors.New("no server available")

// Pick returns servers[PickIndex(key, len(servers))]; servers must be the
// eligible list, sorted by id.
func Pick(key string, servers []Member) (Member, error) {
	if len(servers) == 0 {
		return Member{}, ErrNoServer
	}
	return servers[PickIndex(key, len(servers))], nil
}

// RouteFunc picks the server of a type that handles a client message, from
// the message (its session, route and body, as Pomelo's route functions get
// the session and the message). servers is the eligible list of that type,
// sorted by id and non-empty.
type RouteFunc func(r handler.Request, servers []Member) (Member, error)

// DefaultRoute routes by crc32 of the session's uid, or of its session id
// when no uid is bound.
func DefaultRoute(r handler.Request, servers []Member) (Member, error) {
	s := r.Session
	key := s.UID()
	if key == "" {
		key = s.FrontendID() + "#" + strconv.FormatInt(s.ID(), 10)
	}
	return Pick(key, servers)
}

// RouteBySetting routes by crc32 of a session setting (for example the room
// id); a session without it gets a 400.
func RouteBySetting(key string) RouteFunc {
	return func(r handler.Request, servers []Member) (Member, error) {
		v, ok := r.Session.Get(key)
		if !ok {
			return Member{}, handler.Errorf(handler.CodeBadRequest, "session has no %s", key)
		}
		return Pick(v, servers)
	}
}
