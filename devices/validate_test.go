package devices

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A validation case: text is a whole devices file; the line marked "#<" is
// where the single expected problem must be reported (0 when no line is
// marked), and want must appear in its message.
type validationCase struct {
	name, text, want string
}

// dev is a valid device entry in flow style, with extra fields appended.
func dev(addr, extra string) string {
	s := "  - {address: " + addr + ", id: " + addr + "-id, profile: rover, transport: mqtt, owners: [alice]"
	if extra != "" {
		s += ", " + extra
	}
	return s + "}"
}

var validationCases = []validationCase{
	// keys
	{"unknown device key", header + `devices:
  - address: robot1
    id: rover-001
    profile: rover
    transport: mqtt
    opertors: [bob] #<
`, `unknown key "opertors" in device robot1; did you mean "operators"?`},
	{"unknown key no suggestion", header + "devices:\n" + dev("a", "colour: red") + " #<\n",
		`unknown key "colour" in device a; expected one of: address, id, name`},
	{"unknown top key", header + "device: [] #<\ndevices: []\n", `unknown key "device" at the top level; did you mean "devices"?`},
	{"duplicate key", header + "devices:\n  - address: a\n    id: a\n    profile: rover\n    transport: mqtt\n    id: b #<\n",
		`key "id" given twice (also on line 5); give it once`},
	{"version missing", "devices: [] #<\n", "missing version; add version: 1"},
	{"version wrong", "version: 2 #<\ndevices: []\n", `unsupported version "2"; expected version: 1`},
	{"devices missing", "version: 1 #<\nprofiles: []\n", "missing devices; add devices:"},
	{"devices not a list", header + "devices: {a: 1} #<\n", "devices is a mapping; expected a list of devices"},
	{"device not a mapping", header + "devices:\n  - robot1 #<\n", `device #1 is "robot1"; expected a mapping`},
	{"top not a mapping", "- a #<\n", "the file holds a list; expected a mapping"},
	{"empty file", "", "the file is empty"},
	{"comment only", "# nothing\n", "the file is empty"},
	{"invalid yaml", header + "devices:\n  - address: a: b #<\n", "invalid YAML: mapping values are not allowed in this context; expected a YAML mapping"},
	{"two documents", header + "devices: []\n--- #<\nversion: 1\n", "a second YAML document starts here"},

	// required fields
	{"missing address", header + "devices:\n  - id: a #<\n    profile: rover\n    transport: mqtt\n", "device #1 has no address; add address:"},
	{"missing id", header + "devices:\n  - address: robot1 #<\n    profile: rover\n    transport: mqtt\n", "missing id in device robot1; add id:"},
	{"missing profile", header + "devices:\n  - address: robot1 #<\n    id: r\n    transport: mqtt\n",
		"missing profile in device robot1; add profile: <name of a loaded profile> (loaded: envsensor, relay, rover)"},
	{"missing transport", header + "devices:\n  - address: robot1 #<\n    id: r\n    profile: rover\n",
		"missing transport in device robot1; add transport: mqtt, serial or memory"},
	{"empty address", header + "devices:\n  - {address: '', id: a, profile: rover, transport: mqtt} #<\n", `invalid address "" in device #1`},

	// charset and length
	{"address charset", header + "devices:\n" + `  - {address: "robot 1", id: a, profile: rover, transport: mqtt} #<` + "\n",
		`invalid address "robot 1" in device #1; expected 1..64 of letters, digits, '_', '.', '@', '-'`},
	{"address too long", header + "devices:\n" + `  - {address: ` + strings.Repeat("a", 65) + `, id: a, profile: rover, transport: mqtt} #<` + "\n", "invalid address \"aaaa"},
	{"address 64 ok, id bad", header + "devices:\n" + `  - {address: ` + strings.Repeat("a", 64) + `, id: "rover/1", profile: rover, transport: mqtt} #<` + "\n",
		`invalid id "rover/1" in device aaaa`},
	{"id with plus", header + "devices:\n" + `  - {address: a, id: "r+1", profile: rover, transport: mqtt} #<` + "\n", `invalid id "r+1"`},
	{"id with at", header + "devices:\n" + `  - {address: a, id: "r@1", profile: rover, transport: mqtt} #<` + "\n", `invalid id "r@1"`},
	{"id too long", header + "devices:\n" + `  - {address: a, id: ` + strings.Repeat("i", 65) + `, profile: rover, transport: mqtt} #<` + "\n", `invalid id "iiii`},
	{"name control char", header + "devices:\n" + dev("a", `name: "bad\tname"`) + " #<\n", "invalid name in device a; expected up to 128 bytes"},
	{"address is a list", header + "devices:\n" + `  - {address: [a], id: a, profile: rover, transport: mqtt} #<` + "\n",
		"address in device #1 is a list; expected a single value"},

	// duplicates
	{"duplicate address", header + "devices:\n" + dev("robot1", "") + "\n" + `  - {address: robot1, id: other, profile: rover, transport: mqtt} #<` + "\n",
		`duplicate address "robot1" (first used on line 4); expected each device to have its own address`},
	{"duplicate id", header + "devices:\n" + dev("robot1", "") + "\n" + `  - {address: robot2, id: robot1-id, profile: rover, transport: mqtt} #<` + "\n",
		`duplicate id "robot1-id" in device robot2 (first used on line 4 by robot1)`},

	// profile and transport
	{"profile not loaded", header + "devices:\n" + `  - {address: a, id: a, profile: rovr, transport: mqtt} #<` + "\n",
		`profile "rovr" in device a is not loaded; expected one of the loaded profiles: envsensor, relay, rover (did you mean "rover"?)`},
	{"profile not loaded none", "version: 1\nprofiles: []\ndevices:\n" + `  - {address: a, id: a, profile: rover, transport: mqtt} #<` + "\n",
		`profile "rover" in device a is not loaded; expected one of the loaded profiles: (none)`},
	{"transport unknown", header + "devices:\n" + `  - {address: a, id: a, profile: rover, transport: mqqt} #<` + "\n",
		`unknown transport "mqqt" in device a; expected mqtt, serial or memory (did you mean "mqtt"?)`},
	{"transport upper case", header + "devices:\n" + `  - {address: a, id: a, profile: rover, transport: MQTT} #<` + "\n", `unknown transport "MQTT"`},

	// serial
	{"serial missing", header + "devices:\n  - address: relay1 #<\n    id: r\n    profile: relay\n    transport: serial\n",
		"missing serial in device relay1, which uses transport serial; add serial: with path: or usb:"},
	{"serial for mqtt", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: mqtt\n    serial: #<\n      path: /dev/ttyS0\n",
		"serial in device a is only for transport serial, but the transport is mqtt; remove serial: or set transport: serial"},
	{"serial both", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: /dev/ttyS0\n      usb: {vendor: \"0403\", product: \"6001\"} #<\n",
		"both path and usb in serial of device a; expected exactly one of them"},
	{"serial neither", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      baud: 9600 #<\n",
		"no port in serial of device a; expected path: /dev/serial/by-id/... or usb:"},
	{"serial not a mapping", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial: /dev/ttyS0 #<\n",
		`serial in device a is "/dev/ttyS0"; expected a mapping with path: or usb:`},
	{"serial path relative", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: ttyS0 #<\n",
		`path "ttyS0" in serial of device a is not an absolute device path`},
	{"usb vendor 5 digits", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      usb:\n        vendor: \"04031\" #<\n        product: \"6001\"\n",
		`vendor in serial.usb of device a is "04031"; expected 4 hex digits such as "0403"`},
	{"usb product not hex", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      usb:\n        vendor: \"0403\"\n        product: \"60g1\" #<\n",
		`product in serial.usb of device a is "60g1"; expected 4 hex digits`},
	{"usb product missing", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      usb:\n        vendor: \"0403\" #<\n",
		"missing product in serial.usb of device a; add product:"},
	{"usb unknown key", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      usb:\n        vendor: \"0403\"\n        product: \"6001\"\n        serail: X #<\n",
		`unknown key "serail" in serial.usb of device a; did you mean "serial"?`},
	{"baud low", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: /dev/ttyS0\n      baud: 49 #<\n",
		`baud in serial of device a is "49"; expected a whole number from 50 to 4000000`},
	{"baud high", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: /dev/ttyS0\n      baud: 4000001 #<\n",
		`baud in serial of device a is "4000001"; expected a whole number from 50 to 4000000`},
	{"data bits", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: /dev/ttyS0\n      data_bits: 9 #<\n",
		`data_bits in serial of device a is "9"; expected a whole number from 5 to 8`},
	{"parity", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: /dev/ttyS0\n      parity: N #<\n",
		`parity in serial of device a is "N"; expected none, odd, even, mark or space`},
	{"stop bits", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: /dev/ttyS0\n      stop_bits: 3 #<\n",
		`stop_bits in serial of device a is "3"; expected 1, 1.5 or 2`},
	{"dtr", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: /dev/ttyS0\n      dtr: maybe #<\n",
		`dtr in serial of device a is "maybe"; expected true or false`},
	{"serial unknown key", header + "devices:\n  - address: a\n    id: a\n    profile: relay\n    transport: serial\n    serial:\n      path: /dev/ttyS0\n      baudrate: 9600 #<\n",
		`unknown key "baudrate" in serial of device a; did you mean "baud"?`},
	{"same port twice", header + "devices:\n  - {address: a, id: a, profile: relay, transport: serial, serial: {path: /dev/ttyS0}}\n  - {address: b, id: b, profile: relay, transport: serial, serial: {path: /dev/ttyS0}} #<\n",
		"device b uses the same serial port (path /dev/ttyS0) as device a on line 4"},
	{"same usb twice", header + "devices:\n  - {address: a, id: a, profile: relay, transport: serial, serial: {usb: {vendor: \"0403\", product: \"6001\"}}}\n  - {address: b, id: b, profile: relay, transport: serial, serial: {usb: {vendor: \"0403\", product: \"6001\"}}} #<\n",
		"give usb serial: to tell identical adapters apart"},

	// numbers and durations
	{"ttl unparsable", header + "devices:\n" + dev("a", "command_ttl: 10x") + " #<\n",
		`command_ttl in device a is "10x"; expected a positive duration up to 168h (7 days)`},
	{"ttl no unit", header + "devices:\n" + dev("a", "command_ttl: 600") + " #<\n", `command_ttl in device a is "600"; expected a positive duration`},
	{"ttl negative", header + "devices:\n" + dev("a", "command_ttl: -5m") + " #<\n", `command_ttl in device a is "-5m"; expected a positive duration`},
	{"ttl zero", header + "devices:\n" + dev("a", "command_ttl: 0s") + " #<\n", `command_ttl in device a is "0s"`},
	{"ttl too long", header + "devices:\n" + dev("a", "command_ttl: 169h") + " #<\n", `command_ttl in device a is "169h"`},
	{"queue size zero", header + "devices:\n" + dev("a", "queue_size: 0") + " #<\n", `queue_size in device a is "0"; expected a whole number from 1 to 10000`},
	{"queue size big", header + "devices:\n" + dev("a", "queue_size: 10001") + " #<\n", `queue_size in device a is "10001"; expected a whole number from 1 to 10000`},
	{"max in flight negative", header + "devices:\n" + dev("a", "max_in_flight: -1") + " #<\n", `max_in_flight in device a is "-1"; expected a whole number from 0 to 1000`},
	{"max in flight big", header + "devices:\n" + dev("a", "max_in_flight: 1001") + " #<\n", `max_in_flight in device a is "1001"`},
	{"max in flight float", header + "devices:\n" + dev("a", "max_in_flight: 1.5") + " #<\n", `max_in_flight in device a is "1.5"`},
	{"defaults ttl", header + "defaults:\n  command_ttl: 8d #<\ndevices: []\n", `command_ttl in defaults is "8d"; expected a positive duration`},
	{"defaults queue", header + "defaults:\n  queue_size: 0 #<\ndevices: []\n", `queue_size in defaults is "0"`},
	{"defaults unknown", header + "defaults:\n  max_in_flite: 3 #<\ndevices: []\n", `unknown key "max_in_flite" in defaults; expected one of: command_ttl, queue_size`},
	{"defaults not mapping", header + "defaults: 5 #<\ndevices: []\n", `defaults is "5"; expected a mapping`},

	// access lists
	{"bad owner", header + "devices:\n  - address: a\n    id: a\n    profile: rover\n    transport: mqtt\n    owners:\n      - alice\n      - bad user #<\n",
		`invalid user "bad user" in owners in device a; expected a mesibo address`},
	{"owners mapping", header + "devices:\n" + dev("b", "viewers: {a: 1}") + " #<\n", "viewers in device b is a mapping; expected a list"},

	// groups
	{"duplicate group id", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: 4001, members: [r1]}\n  - {name: g2, group_id: 4001, members: [r1]} #<\n",
		"duplicate group_id 4001 in group g2 (first used on line 6 by group g1)"},
	{"duplicate group name", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: 1, members: [r1]}\n  - {name: g1, group_id: 2, members: [r1]} #<\n",
		`duplicate group name "g1" (first used on line 6)`},
	{"group id zero", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: 0, members: [r1]} #<\n",
		`group_id in group g1 is "0"; expected a positive whole number`},
	{"group id text", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: rovers, members: [r1]} #<\n",
		`group_id in group g1 is "rovers"`},
	{"group name missing", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {group_id: 1, members: [r1]} #<\n",
		"group #1 has no name; add name:"},
	{"group name bad", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: \"my group\", group_id: 1, members: [r1]} #<\n",
		`invalid group name "my group"`},
	{"group id missing", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g, members: [r1]} #<\n",
		"missing group_id in group g; add group_id:"},
	{"group member unknown", header + "devices:\n" + dev("robot1", "") + "\ngroups:\n  - name: g\n    group_id: 1\n    members:\n      - robot1\n      - robot2 #<\n",
		`member "robot2" in group g is not a device in this file; expected a device address (did you mean "robot1"?)`},
	{"group member is group", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: 1, members: [r1]}\n  - {name: g2, group_id: 2, members: [g1]} #<\n",
		`member "g1" in group g2 is a group, not a device`},
	{"group member is id", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: 1, members: [r1-id]} #<\n",
		`member "r1-id" in group g1 is a device id; expected the device's address "r1"`},
	{"group member twice", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: 1, members: [r1, r1]} #<\n",
		`member "r1" listed twice in group g1`},
	{"group members missing", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: 1} #<\n",
		"missing members in group g1"},
	{"group unknown key", header + "devices:\n" + dev("r1", "") + "\ngroups:\n  - {name: g1, group_id: 1, members: [r1], groupid: 3} #<\n",
		`unknown key "groupid" in group g1; did you mean "group_id"?`},

	// subscriptions
	{"subscription user star", header + "devices:\n" + dev("e", "") + "\nsubscriptions:\n  - {user: \"*\", device: e} #<\n",
		`invalid user "*" in subscription #1; expected one mesibo address`},
	{"subscription user bad", header + "devices:\n" + dev("e", "") + "\nsubscriptions:\n  - {user: \"a b\", device: e} #<\n",
		`invalid user "a b" in subscription #1`},
	{"subscription user missing", header + "devices:\n" + dev("e", "") + "\nsubscriptions:\n  - {device: e} #<\n",
		"missing user in subscription #1"},
	{"subscription device unknown", header + "devices:\n" + dev("env1", "") + "\nsubscriptions:\n  - user: alice\n    device: env2 #<\n",
		`device "env2" in subscription #1 is not a device in this file; expected a device address (did you mean "env1"?)`},
	{"subscription device is id", header + "devices:\n" + dev("env1", "") + "\nsubscriptions:\n  - user: alice\n    device: env1-id #<\n",
		`device "env1-id" in subscription #1 is a device id; expected the device's address "env1"`},
	{"subscription not viewer", header + "devices:\n" + dev("env1", "") + "\nsubscriptions:\n  - user: mallory #<\n    device: env1\n",
		`user "mallory" in subscription #1 may not view device env1; expected the user in the device's owners, operators or viewers`},
	{"subscription when unknown field", header + "devices:\n" + dev("r", "") + "\nsubscriptions:\n  - user: alice\n    device: r\n    when: temp > 30 #<\n",
		`when "temp > 30" in subscription #1 does not parse for profile rover: unknown field 'temp'`},
	{"subscription when syntax", header + "devices:\n" + dev("r", "") + "\nsubscriptions:\n  - user: alice\n    device: r\n    when: battery ~ 3 #<\n",
		`when "battery ~ 3" in subscription #1 does not parse for profile rover: expected an operator`},
	{"subscription duplicate", header + "devices:\n" + dev("r", "") + "\nsubscriptions:\n  - {user: alice, device: r}\n  - {user: alice, device: r} #<\n",
		"duplicate subscription of alice to r (same as line 6)"},
	{"subscription unknown key", header + "devices:\n" + dev("r", "") + "\nsubscriptions:\n  - {user: alice, device: r, if: x} #<\n",
		`unknown key "if" in subscription #1; expected one of: user, device, when`},

	// profiles key
	{"profiles entry empty", "version: 1\nprofiles: [\"\"] #<\ndevices: []\n", "an entry of profiles is empty"},
	{"profiles bad glob", "version: 1\nprofiles: [\"[\"] #<\ndevices: []\n", `profiles pattern "[" is malformed`},
	{"profile file missing", "version: 1\nprofiles: [profiles/nothere.yaml] #<\ndevices: []\n", `profile file "profiles/nothere.yaml" not found`},

	// merges
	{"unknown key in merged template", header + "x-templates: &t {baud: 9600} #<\ndevices:\n  - <<: *t\n    address: a\n    id: a\n    profile: rover\n    transport: mqtt\n",
		`unknown key "baud" in device a`},
	{"merge of scalar", header + "devices:\n  - <<: 5 #<\n    address: a\n    id: a\n    profile: rover\n    transport: mqtt\n",
		"a merge (<<) takes an alias of a mapping"},
}

// problemList flattens err into its problems.
func problemList(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, problemList(e)...)
		}
		return out
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func markedLine(text string) int {
	for i, l := range strings.Split(text, "\n") {
		if strings.Contains(l, "#<") {
			return i + 1
		}
	}
	return 0
}

func TestValidation(t *testing.T) {
	for _, tc := range validationCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("devices.yaml", []byte(tc.text), fakeLoader)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			probs := problemList(err)
			if len(probs) != 1 {
				t.Fatalf("%d problems, want 1:\n%v", len(probs), err)
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("not a *LoadError: %#v", err)
			}
			line := markedLine(tc.text)
			if le.File != "devices.yaml" || le.Line != line {
				t.Errorf("at %s:%d, want devices.yaml:%d: %v", le.File, le.Line, line, err)
			}
			if !strings.Contains(le.Msg, tc.want) {
				t.Errorf("message\n  %s\nwant it to contain\n  %s", le.Msg, tc.want)
			}
			prefix := fmt.Sprintf("devices.yaml:%d: ", line)
			if line == 0 {
				prefix = "devices.yaml: "
			}
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), prefix)
			}
		})
	}
}

// TestUnknownKeyExactMessage pins the format the documentation shows.
func TestUnknownKeyExactMessage(t *testing.T) {
	text := header + "devices:\n  - address: robot1\n    id: rover-001\n    profile: rover\n    transport: mqtt\n" +
		"    owners: [alice]\n    viewers: [\"*\"]\n    max_in_flight: 1\n    opertors: [bob]\n"
	_, err := Parse("devices.yaml", []byte(text), fakeLoader)
	const want = `devices.yaml:11: unknown key "opertors" in device robot1; did you mean "operators"?`
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

func TestManyProblems(t *testing.T) {
	var b strings.Builder
	b.WriteString(header + "devices:\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  - {address: d%d, id: d%d, profile: nope, transport: mqtt}\n", i, i)
	}
	_, err := Parse("devices.yaml", []byte(b.String()), fakeLoader)
	probs := problemList(err)
	if len(probs) != maxProblems+1 {
		t.Fatalf("%d problems, want %d", len(probs), maxProblems+1)
	}
	for i, p := range probs[:maxProblems] {
		var le *LoadError
		if !errors.As(p, &le) || le.Line != 4+i {
			t.Errorf("problem %d: %v", i, p)
		}
	}
	if !strings.Contains(probs[maxProblems].Error(), "devices.yaml: 10 more problems not shown") {
		t.Errorf("summary: %v", probs[maxProblems])
	}
}

func TestSeveralProblemsSorted(t *testing.T) {
	text := header + "subscriptions:\n  - {user: alice, device: ghost}\ndevices:\n  - {address: a, id: a, profile: rover, transport: bus}\n"
	_, err := Parse("devices.yaml", []byte(text), fakeLoader)
	probs := problemList(err)
	if len(probs) != 2 || !strings.HasPrefix(probs[0].Error(), "devices.yaml:4:") || !strings.HasPrefix(probs[1].Error(), "devices.yaml:6:") {
		t.Fatalf("problems: %v", err)
	}
}

func TestLimits(t *testing.T) {
	if _, err := Parse("devices.yaml", make([]byte, MaxFileSize+1), fakeLoader); err == nil ||
		err.Error() != "devices.yaml: the file is larger than 4194304 bytes (4 MiB); split the devices over fewer, shorter entries" {
		t.Errorf("size: %v", err)
	}
	var b strings.Builder
	b.WriteString(header + "devices:\n")
	for range MaxDevices + 1 {
		b.WriteString("- 0\n")
	}
	_, err := Parse("devices.yaml", []byte(b.String()), fakeLoader)
	if err == nil || !strings.Contains(err.Error(), "devices.yaml:4: 100001 devices; expected at most 100000") {
		t.Errorf("count: %v", err)
	}
}

// TestLongValuesClipped: user text quoted in messages is shortened.
func TestLongValuesClipped(t *testing.T) {
	long := strings.Repeat("é", 5000)
	text := header + "devices:\n  - {address: \"" + long + "\", id: a, profile: \"" + long + "\", transport: mqtt, queue_size: \"" + long + "\"}\n"
	_, err := Parse("devices.yaml", []byte(text), fakeLoader)
	probs := problemList(err)
	if len(probs) != 3 {
		t.Fatalf("%d problems: %v", len(probs), err)
	}
	for _, p := range probs {
		if len(p.Error()) > 400 || !strings.Contains(p.Error(), "é…") {
			t.Errorf("not clipped (%d bytes): %.200s", len(p.Error()), p.Error())
		}
	}
}

// TestMergeBomb: nested merges of aliases cannot make a small file expensive.
func TestMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString(header + "x0: &a0 {address: a}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "x%d: &a%d {<<: [", i, i)
		for j := range 30 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("devices:\n  - <<: *a8\n")
	_, err := Parse("devices.yaml", []byte(b.String()), fakeLoader)
	if err == nil {
		t.Fatal("no error")
	}
}
