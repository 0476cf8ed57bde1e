//go:build linux && (ppc || ppc64 || ppc64le)

package serial

import "golang.org/x/sys/unix"

// On powerpc struct termios already carries the speeds (no TCGETS2).
const (
	termiosGet = unix.TCGETS
	termiosSet = unix.TCSETS
)
