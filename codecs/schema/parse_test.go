package schema

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestChatCases(t *testing.T) {
	p := RoverProfile()
	for i, c := range ChatCases {
		name := fmt.Sprintf("%03d", i)
		t.Run(name, func(t *testing.T) {
			inv, err := p.Parse(c.Input, ChatCaseOptions)
			if e := c.Check(inv, err); e != nil {
				t.Error(e)
			}
			if err == nil {
				checkInvocation(t, p, inv)
			}
		})
	}
}

// checkInvocation checks the invariants of a successful parse: every value
// is of its argument's type and within its bounds, every required argument
// is there, and the canonical form parses back to the same arguments.
func checkInvocation(t testing.TB, p *Profile, inv *Invocation) {
	t.Helper()
	if inv.Cmd == nil {
		if inv.Args != nil && !inv.JSON {
			t.Fatalf("extra verb %q with args %v", inv.Verb, inv.Args)
		}
		return
	}
	if inv.Cmd != p.Command(inv.Verb) || inv.Cmd.Verb != inv.Verb {
		t.Fatalf("verb %q, command %q", inv.Verb, inv.Cmd.Verb)
	}
	if inv.Args == nil {
		t.Fatalf("%s: nil args", inv.Verb)
	}
	for name, v := range inv.Args {
		a := inv.Cmd.Arg(name)
		if a == nil || a.Name != name {
			t.Fatalf("%s: unknown arg %q", inv.Verb, name)
		}
		if !a.check(v) {
			t.Fatalf("%s: arg %s=%#v is not a valid %s", inv.Verb, name, v, a.Type)
		}
	}
	for _, a := range inv.Cmd.Args {
		if _, ok := inv.Args[a.Name]; !ok && (a.Required || a.Default != nil) {
			t.Fatalf("%s: %s missing", inv.Verb, a.Name)
		}
	}
	s := inv.String()
	back, err := p.Parse(s, ParseOptions{})
	if err != nil {
		t.Fatalf("canonical form %q does not parse: %v", s, err)
	}
	if back.Verb != inv.Verb || !sameArgs(back.Args, inv.Args) {
		t.Fatalf("canonical form %q gives %v, want %v", s, back.Args, inv.Args)
	}
}

func sameArgs(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok {
			return false
		}
		if f, isF := v.(float64); isF {
			g, isG := w.(float64)
			if !isG || f != g {
				return false
			}
			continue
		}
		if v != w {
			return false
		}
	}
	return true
}

func TestParseErrorType(t *testing.T) {
	_, err := RoverProfile().Parse("mvoe 1", ParseOptions{})
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Kind != ErrUnknownVerb || pe.Suggestion != "move" || pe.Verb != "mvoe" {
		t.Fatalf("got %#v", err)
	}
	if pe.Error() != pe.Msg || !strings.HasPrefix(pe.Msg, "unknown command") {
		t.Fatalf("Error() = %q", pe.Error())
	}
}
