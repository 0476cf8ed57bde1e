//go:build !linux

package serial

import (
	"errors"
	"runtime"
)

var errUnsupported = errors.New("serial ports are supported on Linux only (this is " + runtime.GOOS + ")")

// Port is an open serial port (Linux only).
type Port struct{}

// OpenPort fails: serial ports are supported on Linux only.
func OpenPort(path string, cfg PortConfig) (*Port, error) { return nil, errUnsupported }

func (p *Port) Read(b []byte) (int, error)  { return 0, errUnsupported }
func (p *Port) Write(b []byte) (int, error) { return 0, errUnsupported }
func (p *Port) Close() error                { return nil }
func (p *Port) SetDTR(on bool) error        { return errUnsupported }
func (p *Port) SetRTS(on bool) error        { return errUnsupported }
func (p *Port) Path() string                { return "" }
func (p *Port) Fd() int                     { return -1 }
func (p *Port) Baud() int                   { return 0 }
func (p *Port) Warnings() []string          { return nil }
