package serial

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mesibo-iot/mesibo-iot/transports"
)

// ErrNoPort: the port a device is configured with is not there now.
var ErrNoPort = errors.New("serial port not found")

// resolve says which device node to open now for sp. It runs before every
// open: a /dev/serial/by-id link or a USB identity may point to another
// /dev/ttyUSBn after a replug.
//
// USB identities are looked up in sysfs (/sys/class/tty/*/device, then up to
// the USB device's idVendor, idProduct and serial). go.bug.st/serial's
// enumerator is not used: on Linux it lists ports with GetPortsList, which
// opens every /dev/ttyS* to see whether it is real — reconfiguring (raw mode,
// 9600 baud) and releasing exclusive access on a port another worker of
// ours may hold.
func resolve(sp *transports.SerialPort, sysRoot, devRoot string) (string, error) {
	if sp.Path != "" {
		real, err := filepath.EvalSymlinks(sp.Path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("%w: %s does not exist (not connected, or the name changed; see ls -l /dev/serial/by-id)", ErrNoPort, sp.Path)
			}
			return "", fmt.Errorf("%w: %s: %v", ErrNoPort, sp.Path, err)
		}
		return real, nil
	}
	return findUSB(sp.USBVendor, sp.USBProduct, sp.USBSerial, sysRoot, devRoot)
}

// usbPort is one tty backed by a USB device.
type usbPort struct {
	name, vendor, product, serial string
}

func normHex(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(s, "0x")
	for len(s) < 4 {
		s = "0" + s
	}
	return s
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// usbPorts lists the ttys in sysfs that sit on a USB device.
func usbPorts(sysRoot string) ([]usbPort, error) {
	class := filepath.Join(sysRoot, "class", "tty")
	ents, err := os.ReadDir(class)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", class, err)
	}
	top := filepath.Join(sysRoot, "devices")
	if real, err := filepath.EvalSymlinks(top); err == nil {
		top = real
	}
	var out []usbPort
	for _, e := range ents {
		dev, err := filepath.EvalSymlinks(filepath.Join(class, e.Name(), "device"))
		if err != nil {
			continue // virtual terminal: no device
		}
		// walk up to the USB device (the directory with idVendor)
		for d := dev; strings.HasPrefix(d, top) && len(d) > len(top); d = filepath.Dir(d) {
			v := readTrim(filepath.Join(d, "idVendor"))
			if v == "" {
				continue
			}
			out = append(out, usbPort{
				name:    e.Name(),
				vendor:  normHex(v),
				product: normHex(readTrim(filepath.Join(d, "idProduct"))),
				serial:  readTrim(filepath.Join(d, "serial")),
			})
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// findUSB returns the /dev node of the one USB tty matching the identity.
func findUSB(vendor, product, serial, sysRoot, devRoot string) (string, error) {
	if vendor == "" || product == "" {
		return "", fmt.Errorf("%w: the serial port has neither a path nor a USB vendor and product", ErrNoPort)
	}
	ports, err := usbPorts(sysRoot)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoPort, err)
	}
	vendor, product = normHex(vendor), normHex(product)
	want := "USB " + vendor + ":" + product
	if serial != "" {
		want += " serial " + serial
	}
	var match []usbPort
	for _, p := range ports {
		if p.vendor == vendor && p.product == product && (serial == "" || p.serial == serial) {
			match = append(match, p)
		}
	}
	switch len(match) {
	case 1:
		return filepath.Join(devRoot, match[0].name), nil
	case 0:
		var seen []string
		for _, p := range ports {
			seen = append(seen, fmt.Sprintf("%s (%s:%s serial %q)", p.name, p.vendor, p.product, p.serial))
		}
		have := "no USB serial ports are connected"
		if len(seen) > 0 {
			have = "connected: " + strings.Join(seen, ", ")
		}
		return "", fmt.Errorf("%w: no %s is connected; %s", ErrNoPort, want, have)
	default:
		names := make([]string, len(match))
		for i, p := range match {
			names[i] = p.name
		}
		return "", fmt.Errorf("%w: %d ports match %s (%s); add the adapter's serial, or use a /dev/serial/by-id path (multi-port adapters)",
			ErrNoPort, len(match), want, strings.Join(names, ", "))
	}
}
