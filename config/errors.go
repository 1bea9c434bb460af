package config

import (
	"errors"
	"fmt"
	"slices"
)

// ErrUnknownEnv is wrapped by the error Parse and Load return when the
// requested environment is not in the file.
var ErrUnknownEnv = errors.New("unknown environment")

// maxErrors bounds how many problems one Parse reports.
const maxErrors = 20

// Error is one problem in a servers.toml file.
type Error struct {
	File string // file name as given to Load or Parse
	Line int    // 1-based; 0 when the problem has no single line
	Msg  string // "connector: clientPort \"30x0++\" is not a port"
	err  error  // wrapped sentinel, if any
}

func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

func (e *Error) Unwrap() error { return e.err }

// errorList collects the problems of one parse.
type errorList struct {
	file string
	errs []*Error
}

func (l *errorList) add(line int, format string, args ...any) {
	l.errs = append(l.errs, &Error{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// err returns nil, one *Error, or several joined with errors.Join, sorted by
// line so that the output reads like the file.
func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	errs := slices.Clone(l.errs)
	slices.SortStableFunc(errs, func(a, b *Error) int { return a.Line - b.Line })
	if len(errs) == 1 {
		return errs[0]
	}
	out := make([]error, 0, min(len(errs), maxErrors)+1)
	for _, e := range errs[:min(len(errs), maxErrors)] {
		out = append(out, e)
	}
	if len(errs) > maxErrors {
		out = append(out, fmt.Errorf("%s: %d more errors", l.file, len(errs)-maxErrors))
	}
	return errors.Join(out...)
}
