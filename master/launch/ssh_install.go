package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
)

// sshInstallKey is one upload: the same file to the same place.
type sshInstallKey struct{ host, dst, sum string }

// sshInstall is an upload in progress, shared by the Installs that want it.
type sshInstall struct {
	done   chan struct{}
	copied bool
	err    error
}

// Install makes dst on host a copy of the local file src with mode, unless
// dst already has SHA-256 sum there. The upload streams over a session's
// stdin into a temporary file beside dst, whose checksum is verified before
// it is renamed onto dst. Concurrent Installs of the same file to the same
// place share one upload, which runs to its end even if they stop waiting.
func (s *SSH) Install(ctx context.Context, host, src, sum, dst string, mode os.FileMode) (bool, error) {
	fail := func(err error) (bool, error) { return false, fmt.Errorf("install %s on %s: %w", dst, host, err) }
	switch {
	case !path.IsAbs(dst) || strings.HasSuffix(dst, "/"):
		return fail(errors.New("destination is not an absolute file path"))
	case strings.ContainsRune(dst, 0):
		return fail(errors.New("destination holds a NUL"))
	case len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "":
		return fail(fmt.Errorf("checksum %q is not lowercase hex SHA-256", sum))
	}
	h, err := s.host(host)
	if err != nil {
		return fail(err)
	}
	key := sshInstallKey{host, dst, sum}
	s.mu.Lock()
	in := s.installs[key]
	if in == nil {
		if s.closed {
			s.mu.Unlock()
			return fail(errSSHClosed)
		}
		in = &sshInstall{done: make(chan struct{})}
		s.installs[key] = in
		s.wg.Go(func() {
			in.copied, in.err = h.install(src, sum, dst, mode)
			s.mu.Lock()
			delete(s.installs, key)
			s.mu.Unlock()
			close(in.done)
		})
	}
	s.mu.Unlock()
	select {
	case <-in.done:
		if in.err != nil {
			return fail(in.err)
		}
		return in.copied, nil
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// install compares, then copies if need be. It runs until done or the
// launcher closes, whoever waits for it.
func (h *sshHost) install(src, sum, dst string, mode os.FileMode) (bool, error) {
	ctx := h.s.ctx
	var out capBuffer
	if err := h.run(ctx, h.ops, remoteCommand(remoteSum, dst), nil, &out); err != nil {
		return false, fmt.Errorf("checksum: %w", err)
	}
	if strings.Contains(out.String(), "sum "+sum+"\n") {
		return false, nil
	}
	f, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var res capBuffer
	perm := strconv.FormatUint(uint64(mode.Perm()), 8)
	if err := h.run(ctx, h.ops, remoteCommand(remoteInstall, dst, sum, perm), f, &res); err != nil {
		return false, fmt.Errorf("upload %s: %w", src, err)
	}
	if !strings.Contains(res.String(), "copied\n") {
		return false, fmt.Errorf("upload %s: no answer from the host (output %q)", src, res.String())
	}
	h.s.log.Info("file installed", "host", h.name, "file", dst)
	return true, nil
}
