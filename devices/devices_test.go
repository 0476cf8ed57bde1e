package devices

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

// testProfiles are built in code so that these tests do not depend on the
// profile file format; example_test.go loads the real files.
func testProfiles() map[string]*schema.Profile {
	return map[string]*schema.Profile{
		"rover": {Name: "rover", MaxInFlight: 1, Telemetry: []*schema.Field{
			{Name: "battery", Type: schema.TypeFloat, Unit: "%"},
			{Name: "obstacle", Type: schema.TypeFloat, Unit: "cm"},
		}},
		"envsensor": {Name: "envsensor", MaxInFlight: 4, Telemetry: []*schema.Field{
			{Name: "temp", Type: schema.TypeFloat, Unit: "°C"},
			{Name: "humidity", Type: schema.TypeFloat, Unit: "%"},
		}},
		"relay": {Name: "relay", Telemetry: []*schema.Field{
			{Name: "ch1", Type: schema.TypeBool},
		}},
	}
}

// fakeLoader serves testProfiles by file base name ("profiles/rover.yaml"
// gives rover).
func fakeLoader(path string) (*schema.Profile, error) {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if p := testProfiles()[base]; p != nil {
		return p, nil
	}
	return nil, fmt.Errorf("%s: no such test profile", path)
}

const header = `version: 1
profiles: [profiles/rover.yaml, profiles/envsensor.yaml, profiles/relay.yaml]
`

const validFile = `version: 1
profiles:
  - profiles/rover.yaml
  - profiles/envsensor.yaml
  - profiles/relay.yaml
defaults:
  command_ttl: 10m
  queue_size: 32
devices:
  - address: robot1
    id: rover-001
    name: Rover in the lab
    profile: rover
    transport: mqtt
    owners: [alice]
    operators: [bob]
    viewers: ["*"]
    max_in_flight: 2
    command_ttl: 5m
    queue_size: 16
  - address: robot2
    id: rover-002
    profile: rover
    transport: memory
    owners: [alice]
  - address: relay1
    id: relay-01
    profile: relay
    transport: serial
    operators: [bob]
    serial:
      path: /dev/serial/by-id/usb-FTDI_FT232R_A1B2C3-if00-port0
      baud: 9600
      data_bits: 7
      parity: even
      stop_bits: 1.5
      dtr: false
      rts: true
  - address: relay2
    id: relay-02
    profile: relay
    transport: serial
    owners: alice
    max_in_flight: 0
    serial:
      usb: {vendor: "0403", product: 6001, serial: A1B2C3}
  - address: env1@lab
    id: envsensor-001
    profile: envsensor
    transport: mqtt
    viewers: [alice, carol]
groups:
  - name: rovers
    group_id: 4001
    members: [robot1, robot2]
subscriptions:
  - user: alice
    device: env1@lab
    when: temp > 30
  - user: carol
    device: env1@lab
`

func mustParse(t testing.TB, text string) *Config {
	t.Helper()
	cfg, err := Parse("devices.yaml", []byte(text), fakeLoader)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

func TestParseValid(t *testing.T) {
	cfg := mustParse(t, validFile)
	if cfg.File != "devices.yaml" || len(cfg.Profiles) != 3 {
		t.Fatalf("File %q, %d profiles", cfg.File, len(cfg.Profiles))
	}
	bFalse, bTrue := false, true
	want := []struct {
		Address, ID, Name, Profile, Transport string
		Serial                                *transports.SerialPort
		MaxInFlight                           int
		TTL                                   time.Duration
		Queue                                 int
		Line                                  int
	}{
		{"robot1", "rover-001", "Rover in the lab", "rover", "mqtt", nil, 2, 5 * time.Minute, 16, 10},
		{"robot2", "rover-002", "", "rover", "memory", nil, 1, 10 * time.Minute, 32, 21},
		{"relay1", "relay-01", "", "relay", "serial", &transports.SerialPort{
			Path: "/dev/serial/by-id/usb-FTDI_FT232R_A1B2C3-if00-port0", Baud: 9600, DataBits: 7,
			Parity: "even", StopBits: "1.5", DTR: &bFalse, RTS: &bTrue}, 0, 10 * time.Minute, 32, 26},
		{"relay2", "relay-02", "", "relay", "serial", &transports.SerialPort{
			USBVendor: "0403", USBProduct: "6001", USBSerial: "A1B2C3", Baud: 115200, DataBits: 8,
			Parity: "none", StopBits: "1"}, 0, 10 * time.Minute, 32, 39},
		{"env1@lab", "envsensor-001", "", "envsensor", "mqtt", nil, 4, 10 * time.Minute, 32, 47},
	}
	if len(cfg.Devices) != len(want) {
		t.Fatalf("%d devices, want %d", len(cfg.Devices), len(want))
	}
	for i, w := range want {
		d := cfg.Devices[i]
		if d.Address != w.Address || d.ID != w.ID || d.Name != w.Name || d.Profile.Name != w.Profile ||
			d.Transport != w.Transport || d.MaxInFlight != w.MaxInFlight || d.CommandTTL != w.TTL ||
			d.QueueSize != w.Queue || d.Line != w.Line {
			t.Errorf("device %d = %+v (profile %s), want %+v", i, *d, d.Profile.Name, w)
		}
		if (d.Serial == nil) != (w.Serial == nil) {
			t.Errorf("device %s: serial %v, want %v", d.Address, d.Serial, w.Serial)
		} else if d.Serial != nil && !sameSerial(d.Serial, w.Serial) {
			t.Errorf("device %s: serial %+v, want %+v", d.Address, *d.Serial, *w.Serial)
		}
		if cfg.ByAddress[d.Address] != d || cfg.ByID[d.ID] != d {
			t.Errorf("device %s: lookups wrong", d.Address)
		}
		if d.Profile != cfg.Profiles[w.Profile] {
			t.Errorf("device %s: profile is not the loaded one", d.Address)
		}
	}
	if got := cfg.Devices[0].DisplayName(); got != "Rover in the lab" {
		t.Errorf("DisplayName = %q", got)
	}
	if got := cfg.Devices[1].DisplayName(); got != "robot2" {
		t.Errorf("DisplayName = %q", got)
	}

	if len(cfg.Groups) != 1 {
		t.Fatalf("%d groups", len(cfg.Groups))
	}
	g := cfg.Groups[0]
	if g.Name != "rovers" || g.GroupID != 4001 || g.Line != 53 || len(g.Members) != 2 ||
		g.Members[0] != cfg.ByAddress["robot1"] || g.Members[1] != cfg.ByAddress["robot2"] || cfg.GroupByID[4001] != g {
		t.Errorf("group = %+v", g)
	}

	if len(cfg.Subscriptions) != 2 {
		t.Fatalf("%d subscriptions", len(cfg.Subscriptions))
	}
	s := cfg.Subscriptions[0]
	if s.User != "alice" || s.Device != cfg.ByAddress["env1@lab"] || s.When != "temp > 30" || s.Line != 57 ||
		s.Condition == nil || s.Condition.String() == "" || s.Condition.Field.Name != "temp" {
		t.Errorf("subscription 0 = %+v", s)
	}
	s = cfg.Subscriptions[1]
	if s.User != "carol" || s.When != "" || s.Condition != nil || s.Line != 60 {
		t.Errorf("subscription 1 = %+v", s)
	}
}

func sameSerial(a, b *transports.SerialPort) bool {
	eqb := func(x, y *bool) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Path == b.Path && a.USBVendor == b.USBVendor && a.USBProduct == b.USBProduct &&
		a.USBSerial == b.USBSerial && a.Baud == b.Baud && a.DataBits == b.DataBits &&
		a.Parity == b.Parity && a.StopBits == b.StopBits && eqb(a.DTR, b.DTR) && eqb(a.RTS, b.RTS)
}

func TestRoles(t *testing.T) {
	cfg := mustParse(t, header+`devices:
  - {address: d1, id: d1, profile: rover, transport: mqtt, owners: [alice], operators: [bob], viewers: ["*"]}
  - {address: d2, id: d2, profile: rover, transport: mqtt, owners: [alice], operators: ["*", bob], viewers: [carol]}
  - {address: d3, id: d3, profile: rover, transport: mqtt}
  - {address: d4, id: d4, profile: rover, transport: mqtt, owners: [alice, alice], viewers: [alice]}
  - {address: d5, id: d5, profile: rover, transport: mqtt, owners: [alice], operators: [bob], viewers: ["*"]}
`)
	tests := []struct {
		dev, user string
		want      Role
	}{
		{"d1", "alice", RoleOwner},
		{"d1", "bob", RoleOperator},
		{"d1", "carol", RoleViewer},
		{"d1", "", RoleNone},
		{"d1", "*", RoleNone},
		{"d2", "alice", RoleOwner},
		{"d2", "bob", RoleOperator},
		{"d2", "carol", RoleOperator},
		{"d2", "dave", RoleOperator},
		{"d3", "alice", RoleNone},
		{"d4", "alice", RoleOwner},
		{"d4", "bob", RoleNone},
		{"d5", "zed", RoleViewer},
	}
	for _, tt := range tests {
		if got := cfg.ByAddress[tt.dev].Role(tt.user); got != tt.want {
			t.Errorf("%s.Role(%q) = %v, want %v", tt.dev, tt.user, got, tt.want)
		}
	}
	if cfg.ByAddress["d1"].access != cfg.ByAddress["d5"].access {
		t.Error("equal access lists are not shared")
	}
	if got := fmt.Sprint(cfg.ByAddress["d2"].Users(RoleOperator)); got != "[* bob]" {
		t.Errorf("Users(operator) = %s", got)
	}
	if got := fmt.Sprint(cfg.ByAddress["d4"].Users(RoleOwner)); got != "[alice]" {
		t.Errorf("Users(owner) = %s", got)
	}
	if got := cfg.ByAddress["d3"].Users(RoleViewer); got != nil {
		t.Errorf("Users(viewer) = %v", got)
	}
	names := []string{RoleNone.String(), RoleViewer.String(), RoleOperator.String(), RoleOwner.String(), Role(9).String()}
	if got := strings.Join(names, ","); got != "none,viewer,operator,owner,Role(9)" {
		t.Errorf("Role names %s", got)
	}
	if !(RoleNone < RoleViewer && RoleViewer < RoleOperator && RoleOperator < RoleOwner) {
		t.Error("roles are not ordered")
	}
}

func TestLargeAccessList(t *testing.T) {
	var users []string
	for i := range 40 {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	cfg := mustParse(t, header+"devices:\n  - {address: d, id: d, profile: rover, transport: mqtt, operators: ["+strings.Join(users, ", ")+"]}\n")
	d := cfg.Devices[0]
	for _, u := range users {
		if d.Role(u) != RoleOperator {
			t.Fatalf("Role(%s) = %v", u, d.Role(u))
		}
	}
	if d.Role("u40") != RoleNone {
		t.Error("u40 has a role")
	}
}

func TestEndpoints(t *testing.T) {
	cfg := mustParse(t, validFile)
	mq := cfg.Endpoints(TransportMQTT)
	if len(mq) != 2 || mq[0].DeviceID != "rover-001" || mq[1].DeviceID != "envsensor-001" || mq[0].Serial != nil {
		t.Errorf("mqtt endpoints = %+v", mq)
	}
	se := cfg.Endpoints(TransportSerial)
	if len(se) != 2 || se[0].DeviceID != "relay-01" || se[1].DeviceID != "relay-02" ||
		se[0].Serial == nil || se[0].Serial.Baud != 9600 || se[1].Serial.USBVendor != "0403" {
		t.Fatalf("serial endpoints = %+v", se)
	}
	se[0].Serial.Baud = 1 // a copy: the config is unchanged
	if cfg.ByAddress["relay1"].Serial.Baud != 9600 {
		t.Error("Endpoints returned the config's own SerialPort")
	}
	if me := cfg.Endpoints(TransportMemory); len(me) != 1 || me[0].DeviceID != "rover-002" {
		t.Errorf("memory endpoints = %+v", me)
	}
	if none := cfg.Endpoints("carrier-pigeon"); len(none) != 0 {
		t.Errorf("unknown kind endpoints = %+v", none)
	}
}

func TestReachable(t *testing.T) {
	cfg := mustParse(t, validFile)
	addrs := func(ds []*Device) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.Address)
		}
		return strings.Join(s, ",")
	}
	for user, want := range map[string]string{
		"alice": "robot1,robot2,relay2,env1@lab",
		"bob":   "robot1,relay1",
		"carol": "robot1,env1@lab",
		"zed":   "robot1",
		"":      "",
	} {
		if got := addrs(cfg.Reachable(user)); got != want {
			t.Errorf("Reachable(%q) = %s, want %s", user, got, want)
		}
	}
}

func TestEmptyLookupsNeverNil(t *testing.T) {
	cfg := mustParse(t, "version: 1\nprofiles: []\ndevices: []\n")
	if cfg.ByAddress == nil || cfg.ByID == nil || cfg.GroupByID == nil || cfg.Profiles == nil {
		t.Fatal("nil lookup")
	}
	if len(cfg.Devices) != 0 || len(cfg.Reachable("alice")) != 0 || len(cfg.Endpoints("mqtt")) != 0 {
		t.Fatal("not empty")
	}
}

// TestAnchorsAndMerge: YAML anchors, aliases and merge keys work and report
// lines.
func TestAnchorsAndMerge(t *testing.T) {
	cfg := mustParse(t, header+`x-templates:
  sensor: &sensor {profile: envsensor, transport: mqtt, viewers: ["*"]}
devices:
  - &base
    address: a1
    id: a1
    profile: rover
    transport: mqtt
    owners: &admins [alice, root]
  - <<: *base
    address: a2
    id: a2
    viewers: *admins
  - {<<: *sensor, address: s1, id: s1}
`)
	a2 := cfg.ByAddress["a2"]
	if a2 == nil || a2.Profile.Name != "rover" || a2.Role("root") != RoleOwner || a2.Line != 12 {
		t.Fatalf("a2 = %+v", a2)
	}
	s1 := cfg.ByAddress["s1"]
	if s1 == nil || s1.Profile.Name != "envsensor" || s1.Transport != "mqtt" || s1.Role("anyone") != RoleViewer {
		t.Fatalf("s1 = %+v", s1)
	}
}

func TestSerialDefaults(t *testing.T) {
	cfg := mustParse(t, header+`devices:
  - address: r
    id: r
    profile: relay
    transport: serial
    serial: {path: /dev/ttyUSB0}
  - address: s
    id: s
    profile: relay
    transport: serial
    serial: {usb: {vendor: 0x2341, product: "0043"}, parity: ODD, stop_bits: 2, data_bits: 5, baud: 50}
`)
	r := cfg.ByAddress["r"].Serial
	if r.Path != "/dev/ttyUSB0" || r.Baud != 115200 || r.DataBits != 8 || r.Parity != "none" || r.StopBits != "1" || r.DTR != nil || r.RTS != nil {
		t.Errorf("defaults = %+v", *r)
	}
	s := cfg.ByAddress["s"].Serial
	if s.USBVendor != "2341" || s.USBProduct != "0043" || s.USBSerial != "" || s.Parity != "odd" || s.StopBits != "2" || s.DataBits != 5 || s.Baud != 50 {
		t.Errorf("usb = %+v", *s)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	} else if le := (*LoadError)(nil); !errors.As(err, &le) || le.File != filepath.Join(dir, "missing.yaml") {
		t.Errorf("missing file: %#v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "big.yaml: the file is larger than 4194304 bytes") {
		t.Errorf("big file: %v", err)
	}
}

// writeTree writes files (path -> content) under a new temporary directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const miniProfile = `profile: %s
version: "1"
description: test
commands:
  ping:
    description: answer
telemetry:
  temp: {type: float, unit: "°C"}
`

// TestProfileFiles loads real profile files through the schema package:
// globs, the default profiles/ directory, loader errors and duplicates.
func TestProfileFiles(t *testing.T) {
	good := map[string]string{
		"profiles/alpha.yaml": fmt.Sprintf(miniProfile, "alpha"),
		"profiles/beta.yaml":  fmt.Sprintf(miniProfile, "beta"),
	}
	devs := "devices:\n  - {address: a, id: a, profile: alpha, transport: mqtt, viewers: [u]}\n" +
		"  - {address: b, id: b, profile: beta, transport: memory}\n" +
		"subscriptions:\n  - {user: u, device: a, when: temp >= 21.5}\n"

	t.Run("default directory", func(t *testing.T) {
		dir := writeTree(t, good)
		path := filepath.Join(dir, "devices.yaml")
		os.WriteFile(path, []byte("version: 1\n"+devs), 0o644)
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.Profiles) != 2 || cfg.ByAddress["b"].Profile.Name != "beta" || cfg.Subscriptions[0].Condition == nil {
			t.Fatalf("profiles %v", cfg.Profiles)
		}
	})
	t.Run("glob and plain path", func(t *testing.T) {
		dir := writeTree(t, map[string]string{
			"p/alpha.yaml":     good["profiles/alpha.yaml"],
			"other/beta.yaml":  good["profiles/beta.yaml"],
			"cfg/devices.yaml": "version: 1\nprofiles: [../p/*.yaml, ../other/beta.yaml, ../p/alpha.yaml]\n" + devs,
		})
		if _, err := Load(filepath.Join(dir, "cfg/devices.yaml")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no profiles directory", func(t *testing.T) {
		dir := writeTree(t, map[string]string{"devices.yaml": "version: 1\n" + devs})
		_, err := Load(filepath.Join(dir, "devices.yaml"))
		if err == nil || !strings.Contains(err.Error(), `devices.yaml:3: profile "alpha" in device a is not loaded; expected one of the loaded profiles: (none)`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("loader error passes through", func(t *testing.T) {
		files := map[string]string{
			"profiles/alpha.yaml": "profile: alpha\nversion: \"1\"\ncommands:\n  ping:\n    bogus_key: 1\n",
			"profiles/beta.yaml":  good["profiles/beta.yaml"],
		}
		dir := writeTree(t, files)
		path := filepath.Join(dir, "devices.yaml")
		os.WriteFile(path, []byte("version: 1\nprofiles: [profiles/*.yaml]\n"+devs), 0o644)
		_, err := Load(path)
		if err == nil {
			t.Fatal("no error")
		}
		var pe *schema.ProfileError
		if !errors.As(err, &pe) || !strings.HasSuffix(pe.File, "alpha.yaml") || pe.Line == 0 {
			t.Fatalf("err = %v (%#v)", err, pe)
		}
		// No second error for the device naming the broken profile.
		if strings.Contains(err.Error(), "not loaded") {
			t.Errorf("cascade: %v", err)
		}
	})
	t.Run("duplicate profile name", func(t *testing.T) {
		dir := writeTree(t, map[string]string{
			"profiles/alpha.yaml":  good["profiles/alpha.yaml"],
			"profiles/alpha2.yaml": good["profiles/alpha.yaml"],
			"profiles/beta.yaml":   good["profiles/beta.yaml"],
		})
		path := filepath.Join(dir, "devices.yaml")
		os.WriteFile(path, []byte("version: 1\nprofiles:\n  - profiles/*.yaml\n"+devs), 0o644)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), `devices.yaml:3: profile "alpha" is defined by both`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("glob matches nothing", func(t *testing.T) {
		dir := writeTree(t, good)
		path := filepath.Join(dir, "devices.yaml")
		os.WriteFile(path, []byte("version: 1\nprofiles:\n  - profiles/*.yaml\n  - profyles/*.yaml\n"+devs), 0o644)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), `devices.yaml:4: profiles pattern "profyles/*.yaml" matches no files`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("file not found", func(t *testing.T) {
		dir := writeTree(t, good)
		path := filepath.Join(dir, "devices.yaml")
		os.WriteFile(path, []byte("version: 1\nprofiles:\n  - profiles/alpha.yaml\n  - profiles/beta.yml\n"+devs), 0o644)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), `devices.yaml:4: profile file "profiles/beta.yml" not found`) {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "is not loaded") {
			t.Errorf("cascade: %v", err)
		}
	})
}

// TestDocExamples parses the YAML examples of README.md and doc.go.
func TestDocExamples(t *testing.T) {
	glob := func(string) ([]string, error) {
		return []string{"profiles/rover.yaml", "profiles/envsensor.yaml", "profiles/relay.yaml"}, nil
	}
	check := func(name, text string) {
		if !strings.Contains(text, "version:") {
			text = "version: 1\nprofiles: [profiles/*.yaml]\n" + text
		}
		if _, err := parse("devices.yaml", []byte(text), fakeLoader, glob, func(string) bool { return true }); err != nil {
			t.Errorf("%s: %v\n%s", name, err, text)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(readme), "```yaml\n")
	if len(blocks) != 3 {
		t.Fatalf("%d yaml blocks in README.md", len(blocks)-1)
	}
	for i, b := range blocks[1:] {
		check(fmt.Sprintf("README.md block %d", i+1), b[:strings.Index(b, "```")])
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	// The indented blocks of the package comment ("//\t...").
	var cur []string
	var blocksDoc []string
	for _, l := range strings.Split(string(doc), "\n") {
		if rest, ok := strings.CutPrefix(l, "//\t"); ok {
			cur = append(cur, rest)
			continue
		}
		if cur != nil {
			blocksDoc = append(blocksDoc, strings.Join(cur, "\n")+"\n")
			cur = nil
		}
	}
	if len(blocksDoc) != 2 {
		t.Fatalf("%d blocks in doc.go", len(blocksDoc))
	}
	for i, b := range blocksDoc {
		check(fmt.Sprintf("doc.go block %d", i+1), b)
	}
}
