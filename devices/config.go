package devices

import (
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

// Transport kinds a device may name.
const (
	TransportMQTT   = "mqtt"
	TransportSerial = "serial"
	TransportMemory = "memory"
)

// Limits of a devices file.
const (
	MaxFileSize      = 4 << 20 // bytes
	MaxDevices       = 100_000
	MaxGroups        = 100_000
	MaxSubscriptions = 100_000
	MaxProfileFiles  = 1000

	MaxCommandTTL  = 7 * 24 * time.Hour
	MinQueueSize   = 1
	MaxQueueSize   = 10_000
	MaxMaxInFlight = 1000
	MinBaud        = 50
	MaxBaud        = 4_000_000
	DefaultBaud    = 115200
	maxNameLen     = 128 // display names, in bytes
)

// Config is a loaded devices file. It is immutable once returned: share it
// between goroutines freely, and load a new one to reload.
type Config struct {
	File          string                     // the file's path as given to Load or Parse
	Profiles      map[string]*schema.Profile // loaded profiles by name
	Devices       []*Device                  // in file order
	Groups        []*Group                   // in file order
	Subscriptions []*Subscription            // in file order

	// Lookups; never nil.
	ByAddress map[string]*Device
	ByID      map[string]*Device
	GroupByID map[uint64]*Group
}

// Device is one entry of devices:.
type Device struct {
	Address   string // the mesibo address people chat with
	ID        string // the device's id on the wire and in topics
	Name      string // display name; "" when not given
	Profile   *schema.Profile
	Transport string                 // TransportMQTT, TransportSerial or TransportMemory
	Serial    *transports.SerialPort // non-nil iff Transport == TransportSerial
	// MaxInFlight is the window of unanswered commands: the device's
	// max_in_flight when given, else the profile's. 0 means unlimited.
	MaxInFlight int
	// CommandTTL is how long a queued command stays valid: the device's
	// command_ttl, else defaults.command_ttl, else 0 (the module's default).
	CommandTTL time.Duration
	// QueueSize bounds the commands waiting while the device is offline: the
	// device's queue_size, else defaults.queue_size, else 0 (the module's default).
	QueueSize int
	Line      int // line of the entry in the file, for messages

	access *access // shared between devices with equal lists
}

// Role returns what user may do with the device: owners rank above
// operators above viewers; "*" in a list matches any user. A user in no list
// (and the empty user) gets RoleNone.
func (d *Device) Role(user string) Role {
	return d.access.role(user)
}

// Users returns the entries of the access list for role r (owners,
// operators or viewers), sorted, "*" first, without duplicates. The caller
// may modify the returned slice.
func (d *Device) Users(r Role) []string {
	if d.access == nil {
		return nil
	}
	switch r {
	case RoleOwner:
		return d.access.owners.list()
	case RoleOperator:
		return d.access.operators.list()
	case RoleViewer:
		return d.access.viewers.list()
	}
	return nil
}

// DisplayName is Name when given, else Address.
func (d *Device) DisplayName() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Address
}

// Group is a set of devices commanded together by a mesibo group message.
type Group struct {
	Name    string
	GroupID uint64    // the mesibo group id (params.groupid) that addresses the group
	Members []*Device // in the order listed
	Line    int
}

// Subscription routes a device's telemetry to a user without a chat `watch`.
type Subscription struct {
	User      string
	Device    *Device
	When      string            // the condition as written; "" for all telemetry
	Condition *schema.Condition // nil: every telemetry message
	Line      int
}

// Endpoints returns where the devices using transport kind are, in file
// order. The SerialPort values are copies the caller may keep.
func (c *Config) Endpoints(transport string) []transports.Endpoint {
	var eps []transports.Endpoint
	for _, d := range c.Devices {
		if d.Transport != transport {
			continue
		}
		ep := transports.Endpoint{DeviceID: d.ID}
		if d.Serial != nil {
			sp := *d.Serial
			ep.Serial = &sp
		}
		eps = append(eps, ep)
	}
	return eps
}

// Reachable returns the devices user may at least view, in file order.
func (c *Config) Reachable(user string) []*Device {
	var out []*Device
	for _, d := range c.Devices {
		if d.Role(user) >= RoleViewer {
			out = append(out, d)
		}
	}
	return out
}
