package serial

import (
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/mesibo-iot/mesibo-iot/transports/serial/link"
)

// PortConfig is the line configuration of a port.
type PortConfig struct {
	Baud     int    // bits per second; any value the driver takes (BOTHER); default 115200
	DataBits int    // 5..8, default 8
	Parity   string // none|odd|even|mark|space, default none
	StopBits string // "1", "1.5", "2"; default "1". Linux has no 1.5 except with 5 data bits: "1.5" sets 2 (see Warnings)
	DTR, RTS *bool  // raise (true) or drop (false) the line after opening; nil leaves it
	// WriteTimeout bounds each Write: a port that stops taking bytes (the
	// device does not read, flow control holds the line) makes Write fail
	// with ErrWriteTimeout instead of waiting forever. Default 1s.
	WriteTimeout time.Duration
}

// ErrWriteTimeout is returned (wrapped) by Port.Write when the port did not
// take the bytes within PortConfig.WriteTimeout. It is link.ErrWriteTimeout,
// so the link layer and the transport see one error.
var ErrWriteTimeout = link.ErrWriteTimeout

// ErrNotSerial: the path is not a terminal device.
var ErrNotSerial = errors.New("not a serial port")

// isGone reports whether err means the device went away (unplugged, the
// pty's other end closed).
func isGone(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENXIO) ||
		errors.Is(err, syscall.ENODEV)
}
