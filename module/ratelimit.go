package module

import "time"

// bucket is a token bucket: N tokens per period, burst N.
type bucket struct {
	tokens float64
	last   time.Time
	init   bool
}

// take takes one token if there is one; otherwise it says how long to wait.
func (b *bucket) take(r Rate, now time.Time) (time.Duration, bool) {
	if r.N == 0 {
		return 0, true
	}
	perTok := r.Period / time.Duration(r.N)
	if !b.init {
		b.tokens, b.last, b.init = float64(r.N), now, true
	}
	b.tokens += float64(now.Sub(b.last)) / float64(perTok)
	if b.tokens > float64(r.N) {
		b.tokens = float64(r.N)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) * float64(perTok)), false
}

// allow applies the per-user and per-device limits to one command.
func (c *core) allow(st *devState, user string, now time.Time) (time.Duration, bool) {
	ub := c.users[user]
	if ub == nil {
		if len(c.users) > 100000 {
			c.users = map[string]*bucket{} // bounded; forgetting is lenient
		}
		ub = &bucket{}
		c.users[user] = ub
	}
	if w, ok := ub.take(c.m.cfg.UserRate, now); !ok {
		return w, false
	}
	if w, ok := st.bucket.take(c.m.cfg.DeviceRate, now); !ok {
		ub.tokens++ // give the user's token back
		return w, false
	}
	return 0, true
}
