package schema

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHostileProfiles feeds the loader inputs built to exhaust a YAML
// parser: deep nesting, alias bombs, long lines. Each must fail (or load)
// quickly.
func TestHostileProfiles(t *testing.T) {
	bomb := "profile: a\nx0: &a0 [v, v, v, v, v, v, v, v, v, v]\n"
	for i := 1; i < 9; i++ {
		bomb += strings.Replace(strings.Replace("xN: &aN [*aM, *aM, *aM, *aM, *aM, *aM, *aM, *aM, *aM, *aM]\n", "N", string(rune('0'+i)), 2), "M", string(rune('0'+i-1)), -1)
	}
	// The most work the walker can be made to do: every command an alias
	// of one with MaxArgs enum arguments of MaxEnumValues values.
	values := "[v0"
	for i := 1; i < MaxEnumValues; i++ {
		values += fmt.Sprintf(", v%d", i)
	}
	aliasArgs := "profile: a\ncommands:\n  c0: &c\n    args:\n"
	for i := 0; i < MaxArgs; i++ {
		aliasArgs += fmt.Sprintf("      - {name: a%d, type: enum, values: %s], required: true}\n", i, values)
	}
	for i := 1; i < MaxCommands; i++ {
		aliasArgs += fmt.Sprintf("  c%d: *c\n", i)
	}
	inputs := map[string]string{
		"deep flow":       "profile: " + strings.Repeat("[", MaxProfileSize-20),
		"deep block":      strings.Repeat("- ", MaxProfileSize/2-1),
		"deep mappings":   "profile: a\ncommands:\n" + strings.Repeat("a: ", MaxProfileSize/3-20),
		"alias bomb":      bomb,
		"alias bomb used": bomb + "description: *a8\ncommands: {m: {args: [{name: v, type: enum, values: *a8}]}}\n",
		"alias args":      aliasArgs,
		"long line":       "profile: " + strings.Repeat("x", MaxProfileSize-10),
		"many keys":       "profile: a\n" + strings.Repeat("k: 1\n", MaxProfileSize/5-5),
		"many values":     "profile: a\ncommands:\n  m:\n    args: [{name: v, type: enum, values: [" + strings.Repeat("a,", MaxProfileSize/2-100) + "]}]\n",
	}
	for name, in := range inputs {
		if len(in) > MaxProfileSize {
			t.Fatalf("%s: %d bytes", name, len(in))
		}
		start := time.Now()
		p, err := ParseProfile("h.yaml", []byte(in))
		// Generous: the machine may be loaded and -race is slow; a blowup
		// (quadratic in the file, exponential in aliases) takes far longer.
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("%s: %v", name, d)
		}
		if name == "alias args" {
			if err != nil || len(p.Commands) != MaxCommands {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
