package devices

import (
	"slices"
	"strconv"
	"strings"
)

// Role is what a chat user may do with a device. Roles are ordered: a higher
// role may do everything a lower one may.
type Role int

const (
	// RoleNone: the user may not reach the device at all.
	RoleNone Role = iota
	// RoleViewer may ask status and help and watch telemetry.
	RoleViewer
	// RoleOperator may also send commands that are not marked dangerous.
	RoleOperator
	// RoleOwner may do everything, including dangerous commands.
	RoleOwner
)

func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	case RoleOwner:
		return "owner"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Anyone is the access-list entry that matches every user.
const Anyone = "*"

// userSet is one access list: sorted, without duplicates, "*" kept apart.
type userSet struct {
	any   bool
	names []string // sorted; small lists are searched, large ones use index
	index map[string]struct{}
}

const userSetIndexMin = 16

func (s *userSet) has(user string) bool {
	if s == nil {
		return false
	}
	if s.any {
		return true
	}
	if s.index != nil {
		_, ok := s.index[user]
		return ok
	}
	_, ok := slices.BinarySearch(s.names, user)
	return ok
}

// list returns the entries as written, "*" first.
func (s *userSet) list() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.names)+1)
	if s.any {
		out = append(out, Anyone)
	}
	return append(out, s.names...)
}

// access is a device's three access lists. Devices with the same lists share
// one access value (see interner).
type access struct {
	owners, operators, viewers *userSet
}

func (a *access) role(user string) Role {
	if a == nil || user == "" || user == Anyone {
		return RoleNone
	}
	switch {
	case a.owners.has(user):
		return RoleOwner
	case a.operators.has(user):
		return RoleOperator
	case a.viewers.has(user):
		return RoleViewer
	}
	return RoleNone
}

// interner shares identical access lists between devices, so that ten
// thousand devices with "owners: [alice]" hold one list.
type interner struct {
	sets   map[string]*userSet
	access map[[3]*userSet]*access
	buf    []string
	key    strings.Builder
}

func newInterner() *interner {
	return &interner{sets: map[string]*userSet{}, access: map[[3]*userSet]*access{}}
}

// set interns a list of users (already validated). nil for an empty list.
func (in *interner) set(users []string) *userSet {
	if len(users) == 0 {
		return nil
	}
	in.buf = append(in.buf[:0], users...)
	slices.Sort(in.buf)
	in.buf = slices.Compact(in.buf)
	in.key.Reset()
	for _, u := range in.buf {
		in.key.WriteString(u)
		in.key.WriteByte(0)
	}
	if s, ok := in.sets[in.key.String()]; ok {
		return s
	}
	s := &userSet{}
	for _, u := range in.buf {
		if u == Anyone {
			s.any = true
		} else {
			s.names = append(s.names, u)
		}
	}
	s.names = slices.Clip(s.names)
	if len(s.names) >= userSetIndexMin {
		s.index = make(map[string]struct{}, len(s.names))
		for _, u := range s.names {
			s.index[u] = struct{}{}
		}
	}
	in.sets[in.key.String()] = s
	return s
}

func (in *interner) get(owners, operators, viewers []string) *access {
	k := [3]*userSet{in.set(owners), in.set(operators), in.set(viewers)}
	if a, ok := in.access[k]; ok {
		return a
	}
	a := &access{owners: k[0], operators: k[1], viewers: k[2]}
	in.access[k] = a
	return a
}
