package schema

import (
	"strings"
	"unicode/utf8"
)

// Suggest returns the candidate closest to word when it is close enough to
// be a likely typo, or "". Closeness is the optimal-string-alignment
// (restricted Damerau-Levenshtein) distance, case-insensitive: at most 1 for
// words of up to 4 letters, 2 up to 8, 3 beyond. A word that is a prefix of
// exactly one candidate (at least 2 letters) also matches. Ties go to the
// earlier candidate.
func Suggest(word string, candidates []string) string {
	if word == "" || utf8.RuneCountInString(word) > 64 {
		return ""
	}
	w := []rune(strings.ToLower(word))
	limit := 1
	switch {
	case len(w) > 8:
		limit = 3
	case len(w) > 4:
		limit = 2
	}
	best, bestD := "", limit+1
	prefix, prefixes := "", 0
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if lc == string(w) {
			return c
		}
		if len(w) >= 2 && strings.HasPrefix(lc, string(w)) {
			prefix = c
			prefixes++
		}
		cr := []rune(lc)
		if abs(len(cr)-len(w)) > limit {
			continue
		}
		d := osaDistance(w, cr)
		if d < bestD && d < len(cr) {
			best, bestD = c, d
		}
	}
	if best != "" {
		return best
	}
	if prefixes == 1 {
		return prefix
	}
	return ""
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// osaDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent runes.
func osaDistance(a, b []rune) int {
	// Three rolling rows: i-2, i-1, i.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d = min(d, prev2[j-2]+1)
			}
			cur[j] = d
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
