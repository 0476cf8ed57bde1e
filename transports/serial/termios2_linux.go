//go:build linux && !ppc && !ppc64 && !ppc64le

package serial

import "golang.org/x/sys/unix"

// termios2: struct termios with the speeds, so any baud rate can be set
// with BOTHER.
const (
	termiosGet = unix.TCGETS2
	termiosSet = unix.TCSETS2
)
