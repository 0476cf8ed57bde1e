package schema

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrorKind classifies a ParseError.
type ErrorKind int

// Error kinds. The zero value means "no error" (used by ChatCases).
const (
	ErrUnknownVerb  ErrorKind = iota + 1 // the first word is no command of the profile
	ErrBadArg                            // an argument's value is wrong, or its name is unknown
	ErrMissingArg                        // a required argument is absent
	ErrTooManyArgs                       // more positional arguments than the command takes
	ErrSyntax                            // quoting, '=', JSON or condition syntax; empty input
	ErrTooLong                           // the input exceeds MaxInputLen
	ErrUnknownField                      // a condition names no telemetry field of the profile
)

func (k ErrorKind) String() string {
	switch k {
	case 0:
		return "ok"
	case ErrUnknownVerb:
		return "unknown verb"
	case ErrBadArg:
		return "bad argument"
	case ErrMissingArg:
		return "missing argument"
	case ErrTooManyArgs:
		return "too many arguments"
	case ErrSyntax:
		return "syntax"
	case ErrTooLong:
		return "too long"
	case ErrUnknownField:
		return "unknown field"
	}
	return fmt.Sprintf("ErrorKind(%d)", int(k))
}

// ParseError is what Parse and ParseCondition return for input they refuse.
// Msg, which Error returns, is the complete answer for the person who typed
// the input: what is wrong, a suggestion when one is close, and the usage or
// the list of commands.
type ParseError struct {
	Kind       ErrorKind
	Verb       string // the command, when known
	Arg        string // the argument or field concerned, when known
	Suggestion string // the close match offered, if any (a verb, argument, value or field)
	Msg        string
}

func (e *ParseError) Error() string { return e.Msg }

// ProfileError is one problem in a profile file: Error returns
// "file:line: path: message", e.g.
// `rover.yaml:7: commands.move.args[1].min: expected a number, got "x"`.
type ProfileError struct {
	File string
	Line int    // 0 when the problem is not at a line (size, I/O)
	Path string // e.g. "commands.move.args[1].min"; "" for the whole file
	Msg  string
}

func (e *ProfileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ProfileErrors are the problems of one profile file, in file order (at most
// 10 are collected). Error joins them with newlines. errors.As finds the
// first *ProfileError.
type ProfileErrors []*ProfileError

func (es ProfileErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the errors for errors.Is and errors.As.
func (es ProfileErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// show quotes user input for an error message, shortened to maxShown runes,
// with control characters escaped (\n, \t, \x00).
func show(s string) string {
	if utf8.RuneCountInString(s) > maxShown {
		r := []rune(s)
		s = string(r[:maxShown]) + "…"
	}
	if strings.IndexFunc(s, isControl) >= 0 {
		var b strings.Builder
		for _, r := range s {
			if isControl(r) {
				q := strconv.QuoteRune(r)
				b.WriteString(q[1 : len(q)-1])
			} else {
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	return "'" + s + "'"
}
