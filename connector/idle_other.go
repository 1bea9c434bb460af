//go:build !linux

package connector

// Off Linux idle sessions keep their parked readers (see idle_linux.go).
type idlePoller struct{}

func newIdlePoller(*Server) *idlePoller          { return nil }
func (p *idlePoller) close()                     {}
func (p *idlePoller) run()                       {}
func (p *idlePoller) sweep(quit <-chan struct{}) {}
func (s *Session) park() bool                    { return false }
