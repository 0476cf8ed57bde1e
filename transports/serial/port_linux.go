//go:build linux

package serial

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Why not go.bug.st/serial's port: its Read waits in select(2) on a fixed
// 1024-bit fd_set, and with the port's descriptor above 1023 it indexes past
// the set and panics (bugst/go-serial#128; measured here, see
// TestHighFDPort). Inside mesibo, which holds thousands of sockets, port
// descriptors above 1023 are the normal case, and a panic there kills the
// whole server.
//
// What we do instead: open the device ourselves with O_NONBLOCK, configure
// termios with ioctls, and wrap the descriptor with os.NewFile. A
// non-blocking descriptor given to os.NewFile is registered with Go's
// runtime poller (epoll on Linux): no fd_set, so any descriptor number
// works; a blocked Read or Write parks only its goroutine (no thread); read
// and write deadlines work; and Close wakes a blocked Read or Write at once.
// That is what lets the link layer stop cleanly and a stalled port time out.

// Port is an open serial port. Read and Write may be called from different
// goroutines; Close from any goroutine, any number of times: it makes a
// blocked Read or Write return.
type Port struct {
	f            *os.File
	path         string
	fd           int
	writeTimeout time.Duration
	baud         int
	warnings     []string
	closeOnce    sync.Once
	closeErr     error
}

// OpenPort opens and configures the serial port at path (a symlink such as
// /dev/serial/by-id/... is followed). It takes the port exclusively
// (TIOCEXCL: other non-root openers get EBUSY), sets raw mode and the line
// settings, sets DTR/RTS as asked and discards bytes received before the
// open.
func OpenPort(path string, cfg PortConfig) (*Port, error) {
	if cfg.Baud <= 0 {
		cfg.Baud = 115200
	}
	if cfg.DataBits == 0 {
		cfg.DataBits = 8
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Second
	}
	var fd int
	var err error
	for {
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, openError(path, err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	p := &Port{path: path, fd: fd, writeTimeout: cfg.WriteTimeout}
	if err := p.configure(cfg); err != nil {
		return nil, err
	}
	if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
		p.warnings = append(p.warnings, "cannot take the port exclusively (TIOCEXCL): "+err.Error())
	}
	if cfg.DTR != nil {
		if err := p.setModem(unix.TIOCM_DTR, *cfg.DTR); err != nil {
			p.warnings = append(p.warnings, "cannot set DTR: "+err.Error())
		}
	}
	if cfg.RTS != nil {
		if err := p.setModem(unix.TIOCM_RTS, *cfg.RTS); err != nil {
			p.warnings = append(p.warnings, "cannot set RTS: "+err.Error())
		}
	}
	// stale bytes from before the open (a previous session, a boot banner)
	_ = unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)

	f := os.NewFile(uintptr(fd), path)
	if f == nil {
		return nil, fmt.Errorf("open %s: invalid descriptor %d", path, fd)
	}
	// A pollable file supports deadlines; one that is not would block a
	// thread in read(2) with no way to interrupt it: refuse it.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		ok = true // f owns fd now
		f.Close()
		return nil, fmt.Errorf("open %s: the descriptor cannot be polled (%v); is it a serial device?", path, err)
	}
	ok = true
	p.f = f
	return p, nil
}

func openError(path string, err error) error {
	hint := ""
	switch {
	case errors.Is(err, unix.ENOENT):
		hint = " (not connected, or the name changed)"
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		hint = " (permission denied: add the mesibo user to the dialout group, or set MODE/GROUP with a udev rule)"
	case errors.Is(err, unix.EBUSY):
		hint = " (in use by another program, e.g. ModemManager or a serial console)"
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		hint = " (no device behind this name: unplugged?)"
	}
	return &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w%s", err, hint)}
}

func (p *Port) configure(cfg PortConfig) error {
	t, err := unix.IoctlGetTermios(p.fd, termiosGet)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%s: %w (%v)", p.path, ErrNotSerial, err)
		}
		return fmt.Errorf("%s: reading the line settings: %w", p.path, err)
	}
	// raw mode (cfmakeraw), receiver on, modem status lines ignored
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR |
		unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK | unix.IGNPAR
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.PARODD | unix.CMSPAR | unix.CSTOPB | unix.CRTSCTS
	t.Cflag |= unix.CREAD | unix.CLOCAL
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0

	switch cfg.DataBits {
	case 5:
		t.Cflag |= unix.CS5
	case 6:
		t.Cflag |= unix.CS6
	case 7:
		t.Cflag |= unix.CS7
	case 8:
		t.Cflag |= unix.CS8
	default:
		return fmt.Errorf("%s: data bits %d; expected 5, 6, 7 or 8", p.path, cfg.DataBits)
	}
	switch strings.ToLower(cfg.Parity) {
	case "", "none":
	case "odd":
		t.Cflag |= unix.PARENB | unix.PARODD
		t.Iflag |= unix.INPCK
	case "even":
		t.Cflag |= unix.PARENB
		t.Iflag |= unix.INPCK
	case "mark":
		t.Cflag |= unix.PARENB | unix.PARODD | unix.CMSPAR
		t.Iflag |= unix.INPCK
	case "space":
		t.Cflag |= unix.PARENB | unix.CMSPAR
		t.Iflag |= unix.INPCK
	default:
		return fmt.Errorf("%s: parity %q; expected none, odd, even, mark or space", p.path, cfg.Parity)
	}
	switch cfg.StopBits {
	case "", "1":
	case "2":
		t.Cflag |= unix.CSTOPB
	case "1.5":
		// CSTOPB means 1.5 stop bits with 5 data bits, 2 otherwise. A
		// receiver expecting 1.5 takes 2; we check only the first stop bit.
		t.Cflag |= unix.CSTOPB
		if cfg.DataBits != 5 {
			p.warnings = append(p.warnings, "1.5 stop bits exist only with 5 data bits on Linux; sending 2")
		}
	default:
		return fmt.Errorf("%s: stop bits %q; expected 1, 1.5 or 2", p.path, cfg.StopBits)
	}
	if err := setSpeed(p.fd, t, cfg.Baud); err != nil {
		return fmt.Errorf("%s: setting %d baud: %w", p.path, cfg.Baud, err)
	}
	p.baud = cfg.Baud
	if got, err := unix.IoctlGetTermios(p.fd, termiosGet); err == nil {
		if b := speedOf(got); b > 0 && b != cfg.Baud {
			p.baud = b
			p.warnings = append(p.warnings, fmt.Sprintf("asked for %d baud, the driver set %d", cfg.Baud, b))
		}
		// ptys force 8 data bits and no parity; some UARTs lack mark/space
		const frameBits = unix.CSIZE | unix.PARENB | unix.PARODD | unix.CMSPAR | unix.CSTOPB
		if got.Cflag&frameBits != t.Cflag&frameBits {
			p.warnings = append(p.warnings, fmt.Sprintf("asked for character format cflag %#x, the driver set %#x",
				t.Cflag&frameBits, got.Cflag&frameBits))
		}
	}
	return nil
}

// standard are the Bnnn speeds, for drivers without BOTHER.
var standard = map[int]uint32{
	50: unix.B50, 75: unix.B75, 110: unix.B110, 134: unix.B134, 150: unix.B150, 200: unix.B200,
	300: unix.B300, 600: unix.B600, 1200: unix.B1200, 1800: unix.B1800, 2400: unix.B2400,
	4800: unix.B4800, 9600: unix.B9600, 19200: unix.B19200, 38400: unix.B38400,
	57600: unix.B57600, 115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
	500000: unix.B500000, 576000: unix.B576000, 921600: unix.B921600, 1000000: unix.B1000000,
	1152000: unix.B1152000, 1500000: unix.B1500000, 2000000: unix.B2000000,
	2500000: unix.B2500000, 3000000: unix.B3000000, 3500000: unix.B3500000, 4000000: unix.B4000000,
}

// setSpeed sets any baud rate with BOTHER (termios2), falling back to a
// standard Bnnn constant with plain TCSETS.
func setSpeed(fd int, t *unix.Termios, baud int) error {
	t2 := *t
	t2.Cflag &^= unix.CBAUD | unix.CIBAUD // input speed = output speed
	t2.Cflag |= unix.BOTHER
	t2.Ispeed, t2.Ospeed = uint32(baud), uint32(baud)
	err := unix.IoctlSetTermios(fd, termiosSet, &t2)
	if err == nil {
		return nil
	}
	b, ok := standard[baud]
	if !ok {
		return fmt.Errorf("the driver refused a non-standard speed: %w", err)
	}
	t3 := *t
	t3.Cflag &^= unix.CBAUD | unix.CIBAUD
	t3.Cflag |= b
	t3.Ispeed, t3.Ospeed = uint32(baud), uint32(baud)
	return unix.IoctlSetTermios(fd, unix.TCSETS, &t3)
}

func speedOf(t *unix.Termios) int {
	if t.Cflag&unix.CBAUD == unix.BOTHER {
		return int(t.Ospeed)
	}
	for k, v := range standard {
		if t.Cflag&unix.CBAUD == v {
			return k
		}
	}
	return 0
}

func (p *Port) setModem(bit int, on bool) error {
	var err error
	if on {
		err = unix.IoctlSetPointerInt(p.fd, unix.TIOCMBIS, bit)
	} else {
		err = unix.IoctlSetPointerInt(p.fd, unix.TIOCMBIC, bit)
	}
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("the port has no modem control lines (a pty?): %w", err)
	}
	return err
}

// SetDTR raises or drops DTR (many boards reset when DTR rises).
func (p *Port) SetDTR(on bool) error {
	return p.control(func() error { return p.setModem(unix.TIOCM_DTR, on) })
}

// SetRTS raises or drops RTS.
func (p *Port) SetRTS(on bool) error {
	return p.control(func() error { return p.setModem(unix.TIOCM_RTS, on) })
}

func (p *Port) control(fn func() error) error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(uintptr) { ferr = fn() }); err != nil {
		return err
	}
	return ferr
}

// Path is the path the port was opened at.
func (p *Port) Path() string { return p.path }

// Fd is the port's descriptor number (for logs and tests; do not use it
// after Close).
func (p *Port) Fd() int { return p.fd }

// Baud is the speed the driver reports.
func (p *Port) Baud() int { return p.baud }

// Warnings are settings that could not be applied as asked (no modem lines
// on a pty, 1.5 stop bits, a rounded baud rate).
func (p *Port) Warnings() []string { return p.warnings }

// Read reads what has arrived, waiting until something has. A vanished
// device gives io.EOF (a hung-up tty reads 0 bytes) or EIO.
func (p *Port) Read(b []byte) (int, error) {
	n, err := p.f.Read(b)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
		err = fmt.Errorf("read %s: %w", p.path, unwrapPath(err))
	}
	return n, err
}

// Write writes b whole, or fails with ErrWriteTimeout if the port does not
// take it within the write timeout.
func (p *Port) Write(b []byte) (int, error) {
	_ = p.f.SetWriteDeadline(time.Now().Add(p.writeTimeout))
	n, err := p.f.Write(b)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, fmt.Errorf("write %s: %w: the port took %d of %d bytes in %v (the device is not reading, or flow control holds the line) [%w]",
				p.path, ErrWriteTimeout, n, len(b), p.writeTimeout, os.ErrDeadlineExceeded)
		}
		if !errors.Is(err, os.ErrClosed) {
			err = fmt.Errorf("write %s: %w", p.path, unwrapPath(err))
		}
	}
	return n, err
}

// Close discards unsent output (so that close(2) does not wait up to the
// driver's closing_wait, 30 s on many UARTs, for a device that does not
// read) and closes the port. A blocked Read or Write returns.
func (p *Port) Close() error {
	p.closeOnce.Do(func() {
		_ = p.control(func() error { return unix.IoctlSetInt(p.fd, unix.TCFLSH, unix.TCIOFLUSH) })
		p.closeErr = p.f.Close()
	})
	return p.closeErr
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
