// Package devices reads the devices file (devices.yaml): which mesibo
// address reaches which device, over which transport, with which profile,
// and who may do what with it.
//
// # The file
//
//	version: 1
//	profiles:                 # profile files, relative to this file's directory; globs allowed
//	  - profiles/*.yaml
//	defaults:                 # optional per-device defaults
//	  command_ttl: 10m
//	  queue_size: 32
//	devices:
//	  - address: robot1       # mesibo address people chat with
//	    id: rover-001         # device id on the wire and in topics
//	    name: Rover in the lab   # optional display name
//	    profile: rover        # a loaded profile's name
//	    transport: mqtt       # mqtt | serial | memory
//	    owners: [alice]       # may do everything, including dangerous commands
//	    operators: [bob]      # may command (non-dangerous)
//	    viewers: ["*"]        # may ask status, help and watch; "*" = any user
//	    max_in_flight: 1      # override the profile's window (0 = unlimited)
//	    command_ttl: 5m       # override
//	    queue_size: 16        # override: commands waiting while offline
//	  - {address: robot2, id: rover-002, profile: rover, transport: mqtt, owners: [alice]}
//	  - address: relay1
//	    id: relay-01
//	    profile: relay
//	    transport: serial
//	    serial:
//	      path: /dev/serial/by-id/usb-FTDI_FT232R_A1B2C3-if00-port0   # or:
//	      # usb: {vendor: "0403", product: "6001", serial: "A1B2C3"}
//	      baud: 115200
//	      data_bits: 8
//	      parity: none
//	      stop_bits: 1
//	      dtr: false
//	      rts: false
//	  - address: envsensor1
//	    id: envsensor-001
//	    profile: envsensor
//	    transport: mqtt
//	    owners: [alice]
//	groups:                   # device groups, commanded by a mesibo group message
//	  - name: rovers
//	    group_id: 4001        # the mesibo group id (params.groupid) that addresses it
//	    members: [robot1, robot2]   # device addresses
//	subscriptions:            # standing telemetry routing, besides `watch` in chat
//	  - user: alice
//	    device: envsensor1
//	    when: temp > 30       # optional condition; absent = all telemetry
//
// # Top-level keys
//
//   - version (required): 1.
//   - profiles: a list of profile file paths or glob patterns (*, ?, [...]),
//     relative to the directory of the devices file (absolute paths work
//     too). A single string is taken as a one-entry list. A pattern that
//     matches nothing is an error; a file matched twice is loaded once; two
//     files declaring the same profile name are an error. When the key is
//     absent, profiles/*.yaml next to the devices file is loaded if that
//     directory exists; "profiles: []" loads none.
//   - defaults: command_ttl and queue_size for devices that do not set them.
//   - devices (required, may be empty): the devices, in the order the bridge
//     lists them.
//   - groups, subscriptions: optional.
//   - x-anything: ignored; a place for YAML anchors (see below).
//
// # Device keys
//
//   - address (required): the mesibo address people chat with: 1..64 of
//     letters, digits, '_', '.', '@', '-'. Unique in the file.
//   - id (required): the device's id on the wire (MQTT topics, envelopes):
//     1..64 of letters, digits, '_', '.', '-' (never '/', '+', '#', '$').
//     Unique in the file.
//   - name: a display name, up to 128 bytes without control characters.
//   - profile (required): the name of a loaded profile.
//   - transport (required): mqtt, serial or memory (lower case).
//   - owners, operators, viewers: lists of mesibo addresses; "*" matches any
//     user (quote it: "*"). A single address may be written without brackets.
//     A user's role is the highest list they are in: owners may do
//     everything, including commands the profile marks dangerous; operators
//     may send the other commands; viewers may ask status and help and watch
//     telemetry. A user in no list cannot reach the device. A device with no
//     lists is reachable by nobody.
//   - max_in_flight: 0..1000, commands sent and not yet answered (0 =
//     unlimited). Default: the profile's max_in_flight.
//   - command_ttl: a Go duration (30s, 10m, 2h), more than 0 and at most 168h
//     (7 days): how long a command may wait in the queue. Default:
//     defaults.command_ttl, else the module's default.
//   - queue_size: 1..10000, commands kept while the device is offline.
//     Default: defaults.queue_size, else the module's default.
//   - serial: required for transport serial and allowed only there.
//
// # Serial keys
//
//   - path: an absolute device path; prefer /dev/serial/by-id/..., which does
//     not change when adapters are replugged. Or
//   - usb: {vendor, product, serial}: the USB vendor and product ids as 4 hex
//     digits (quote them: "0403"; an optional 0x is accepted), and optionally
//     the adapter's serial number; the port is looked up again at every
//     reconnect. Exactly one of path and usb is required. Two devices may
//     not use the same path, or the same vendor, product and serial.
//   - baud: 50..4000000, default 115200.
//   - data_bits: 5..8, default 8.
//   - parity: none, odd, even, mark or space, default none.
//   - stop_bits: 1, 1.5 or 2, default 1.
//   - dtr, rts: true or false, the lines' initial state; absent leaves the
//     driver's default.
//
// # Groups
//
// name (1..64 of letters, digits, '_', '.', '-'; unique), group_id (the
// mesibo group id, a positive whole number; unique) and members (a list of
// device addresses, each once; groups do not nest). A message to the mesibo
// group goes to every member.
//
// # Subscriptions
//
// user (one mesibo address, not "*"), device (a device address) and
// optionally when, a condition on the device profile's telemetry fields in
// the chat `watch` syntax (temp > 30, battery < 15, ch1 == on). Without when
// the user gets every telemetry message of the device. The user must be at
// least a viewer of the device. The same user, device and condition may be
// listed once.
//
// # YAML
//
// The file is one YAML document. Anchors and aliases (&name, *name) and
// merge keys (<<: *name; explicit keys win) may be used, e.g. for shared
// access lists or device templates. Top-level keys starting with "x-" are
// ignored, so that templates can live there:
//
//	x-templates:
//	  sensor: &sensor {profile: envsensor, transport: mqtt, viewers: ["*"]}
//	devices:
//	  - {<<: *sensor, address: envsensor2, id: envsensor-002}
//
// Keys merged from a template are checked like keys written in place.
//
// # Errors
//
// Load and Parse check the whole file and return every problem found, up to
// 20 at a time, as *LoadError values ("devices.yaml:12: what is wrong; what
// is expected") joined with errors.Join, ordered by line. Unknown keys are
// errors, with the closest known key suggested. Errors of profile files come
// from the profile loader and carry the profile file's name and line.
//
// Limits: the file is at most 4 MiB and holds at most 100,000 devices,
// 100,000 groups, 100,000 subscriptions and 1,000 profile files.
//
// A Config is immutable once loaded; reload by loading again.
package devices
