//go:build !linux

package connector

import "time"

// Off Linux every session keeps its own reading goroutine.

type poller struct{}

func newPoller(*Server) (*poller, error)                 { return nil, nil }
func (*poller) add(*Session) bool                        { return false }
func (*poller) remove(*Session)                          {}
func (*poller) run()                                     {}
func (*poller) stop()                                    {}
func (*poller) sweep(_ time.Duration, _ <-chan struct{}) {}
