package devices

import (
	"strings"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
)

// suggest returns the candidate closest to s when it is close enough to be a
// likely typo, or "": the chat grammar's rule (schema.Suggest), plus a key
// written with extra letters after a known one ("baudrate" → "baud").
func suggest(s string, candidates []string) string {
	if c := schema.Suggest(s, candidates); c != "" {
		return c
	}
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if len(c) >= 3 && strings.HasPrefix(ls, strings.ToLower(c)) {
			return c
		}
	}
	return ""
}
