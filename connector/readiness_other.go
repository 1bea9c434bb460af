//go:build !linux

package connector

// waitReadable is a no-op off Linux: the reader then blocks in Read holding a
// pooled buffer, which costs memory per idle connection but is correct.
func (s *Session) waitReadable() error { return nil }
