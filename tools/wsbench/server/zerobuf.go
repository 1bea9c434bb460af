package main

import (
	"bufio"
	"errors"
	"net"
	"syscall"
)

// zbSession is a connection served in the "zero-buffer idle" model used by
// the gobwas and tcp candidates: while idle it holds no read or write buffer,
// only its goroutine parked in waitReadable. A pooled bufio.Reader is taken
// when bytes arrive and given back as soon as everything buffered has been
// handled.
type zbSession struct {
	c    net.Conn
	rc   syscall.RawConn
	echo func(*zbSession, *bufio.Reader) error // handles one frame/package
	// maxPayload is the largest frame or package payload accepted.
	maxPayload int64
	// idleSpawn parks each idle wait on a fresh goroutine (see run).
	idleSpawn bool
	writev    bool // see config.writev
	stackWork int  // see config.stackWork
}

func newZBSession(c net.Conn, cfg config, echo func(*zbSession, *bufio.Reader) error) (*zbSession, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &zbSession{
		c:          c,
		rc:         rc,
		echo:       echo,
		maxPayload: cfg.maxPayload,
		idleSpawn:  cfg.idleSpawn,
		writev:     cfg.writev,
		stackWork:  cfg.stackWork,
	}, nil
}

// run handles frames while br holds data, then waits for more. br may be nil.
//
// With idleSpawn, once a burst is handled the goroutine hands the wait to a
// new goroutine and exits. Whatever depth the handling needed, the idle
// connection then costs one minimal (2 KiB) stack: the runtime frees grown
// stacks of exiting goroutines, but only shrinks a live goroutine's stack
// when less than a quarter of it is in use.
func (s *zbSession) run(br *bufio.Reader) {
	for {
		if br == nil || br.Buffered() == 0 {
			if br != nil {
				putReader(br)
				br = nil
				if s.idleSpawn {
					go s.run(nil)
					return
				}
			}
			if waitReadable(s.rc) != nil {
				s.close()
				return
			}
			br = getReader(s.c)
		}
		work(s.stackWork)
		if err := s.echo(s, br); err != nil {
			putReader(br)
			s.close()
			return
		}
	}
}

func (s *zbSession) close() {
	_ = s.c.Close()
	sessions.Add(-1)
}
