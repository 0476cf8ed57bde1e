package devices

import "strings"

// suggest returns the candidate closest to s by edit distance when it is close
// enough to be a likely typo, or "".
func suggest(s string, candidates []string) string {
	s = strings.ToLower(s)
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(s, strings.ToLower(c))
		limit := 2
		if n := len(c) / 3; n > limit {
			limit = n
		}
		prefix := len(s) >= 3 && len(c) >= 3 && (strings.HasPrefix(s, strings.ToLower(c)) || strings.HasPrefix(strings.ToLower(c), s))
		if (d <= limit || prefix) && (bestD < 0 || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes), with a
// transposition of two adjacent bytes counted as one edit.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 1 << 20
	}
	var rows [3][65]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
