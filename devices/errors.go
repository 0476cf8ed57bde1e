package devices

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
)

// maxProblems is how many problems one Load or Parse reports at once.
const maxProblems = 20

// LoadError is one problem found in a devices file. Error() reads
// "file:line: what is wrong; what is expected" (or "file: ..." when the
// problem has no line, such as a file that is too large).
type LoadError struct {
	File string
	Line int
	Msg  string
	Err  error // the underlying cause (e.g. from os), if any; see Unwrap
}

// Unwrap returns the underlying cause, so that errors.Is(err, fs.ErrNotExist)
// tells a missing devices file from a wrong one.
func (e *LoadError) Unwrap() error { return e.Err }

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
	}
	return e.File + ": " + e.Msg
}

// problems collects the errors of one parse, up to maxProblems.
type problems struct {
	file    string
	errs    []error
	dropped int
}

func (p *problems) add(err error) {
	if len(p.errs) >= maxProblems {
		p.dropped++
		return
	}
	p.errs = append(p.errs, err)
}

func (p *problems) at(line int, msg string) {
	if len(p.errs) >= maxProblems {
		p.dropped++
		return
	}
	p.errs = append(p.errs, &LoadError{File: p.file, Line: line, Msg: msg})
}

func (p *problems) full() bool { return len(p.errs) >= maxProblems }

// err returns nil, the single problem, or every problem joined, ordered by
// line (errors from the profile loader, which carry their own file, first).
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	errs := p.errs
	slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(lineOf(a), lineOf(b)) })
	if p.dropped > 0 {
		errs = append(errs[:len(errs):len(errs)], &LoadError{File: p.file,
			Msg: strconv.Itoa(p.dropped) + " more problems not shown; fix the ones above and load again"})
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func lineOf(err error) int {
	if le, ok := err.(*LoadError); ok {
		return le.Line
	}
	return -1
}
