package sim

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/schema"
	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

func TestInjectedBytesAreRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		name, b := malformedSerial(rng, i%2 == 0, uint16(i%3*40))
		seen[name] = true
		if !refusedOnSerial(b) {
			t.Fatalf("serial malformed %s is taken: %x", name, b)
		}
		name, p := malformedPayload(rng, 1<<20)
		if _, err := wire.Unmarshal(p); err == nil {
			t.Fatalf("malformed payload %s decodes", name)
		}
		if g := garbage(rng, 1+rng.IntN(200), true); !refusedOnSerial(g) {
			t.Fatalf("serial garbage taken: %x", g)
		}
		if _, err := wire.Unmarshal(garbage(rng, 1+rng.IntN(200), false)); err == nil {
			t.Fatal("MQTT garbage decodes")
		}
	}
	for _, want := range []string{"frame-bad-crc", "frame-bad-version", "frame-bad-type", "frame-torn"} {
		if !seen[want] {
			t.Errorf("never injected %s", want)
		}
	}
	if len(InvalidEnvelopeCases()) < 20 {
		t.Fatalf("only %d invalid cases", len(InvalidEnvelopeCases()))
	}
	if !refusedOnSerial(bootBanner("relay1", 3)) {
		t.Fatal("boot banner decodes as a frame")
	}
}

func TestShippedScenarios(t *testing.T) {
	demo, err := LoadScenario("../scenarios/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"robot1": "rover/mqtt", "robot2": "rover/mqtt", "env1": "envsensor/mqtt", "relay1": "relay/serial"}
	if len(demo.Devices) != len(want) {
		t.Fatalf("demo devices: %+v", demo.Devices)
	}
	for _, d := range demo.Devices {
		if want[d.ID] != d.Type+"/"+d.Transport {
			t.Errorf("demo device %s: %s/%s", d.ID, d.Type, d.Transport)
		}
	}
	soak, err := LoadScenario("../scenarios/soak.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := soak.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	tr := map[string]int{}
	for _, d := range sc.Devices {
		tr[d.Transport]++
	}
	if len(sc.Devices) != 200 || tr[TransportMQTT] == 0 || tr[TransportSerial] == 0 {
		t.Fatalf("soak: %d devices %v", len(sc.Devices), tr)
	}
}

func TestScenarioParsing(t *testing.T) {
	sc, err := ParseScenario([]byte(`
seed: 9
time_scale: 2
devices:
  - {id: "r%02d", count: 3, type: rover, faults: {drop_ack: 0.25, delay_ack: 150ms}}
  - {id: s, count: 2, type: relay, transport: serial, link: "usb-s", baud: 9600}
`))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range sc.Devices {
		ids = append(ids, d.ID+":"+d.Link)
	}
	if got := strings.Join(ids, ","); got != "r01:,r02:,r03:,s1:usb-s1,s2:usb-s2" {
		t.Fatalf("expanded: %s", got)
	}
	if f := sc.Devices[0].Faults; f.DropAck != 0.25 || f.DelayAck != 150*time.Millisecond {
		t.Fatalf("faults %+v", f)
	}
	if _, err := ParseScenario([]byte("devices: [{id: a, type: rover, colour: red}]")); err == nil {
		t.Fatal("unknown key accepted")
	}
	bad := Scenario{Devices: []DeviceSpec{{ID: "a/b", Type: "toaster", Transport: "can"}, {ID: "x", Type: TypeRover, Faults: Faults{DropAck: 2}}}}
	if _, err := bad.withDefaults(); err == nil || !strings.Contains(err.Error(), "toaster") || !strings.Contains(err.Error(), "drop_ack") {
		t.Fatalf("bad scenario: %v", err)
	}
	f, err := ParseFaults(Faults{}, "drop_ack=0.5 delay_ack=200ms", "boot_banner=true")
	if err != nil || f.DropAck != 0.5 || f.DelayAck != 200*time.Millisecond || !f.BootBanner {
		t.Fatalf("ParseFaults: %+v %v", f, err)
	}
	if _, err := ParseFaults(f, "dropack=1"); err == nil {
		t.Fatal("unknown fault accepted")
	}
	if f, _ := ParseFaults(f, "none"); f != (Faults{}) {
		t.Fatalf("none: %+v", f)
	}
}

func TestRenderManyDevices(t *testing.T) {
	s := &Sim{brokerURL: "tcp://127.0.0.1:1883", started: time.Now()}
	var states []DeviceState
	now := time.Now()
	for i := 0; i < 150; i++ {
		st := DeviceState{ID: "dev" + itoa(i), Type: TypeRover, Transport: TransportMQTT, Online: i%7 != 0, Boot: 1,
			Activity: now.Add(-time.Duration(i) * time.Second)}
		if i == 120 {
			st.Activity = now
			st.LastCommand, st.LastOutcome, st.LastAt = "move #1", "done", now
		}
		states = append(states, st)
	}
	out := render(s, states, []string{"a", "b"}, 40, 100, now)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) > 40 {
		t.Fatalf("%d lines for a 40-row terminal", len(lines))
	}
	if !strings.Contains(out, "dev120 ") || !strings.Contains(out, "quieter devices not shown") || !strings.Contains(out, "offline") {
		t.Fatalf("render:\n%s", out)
	}
	for _, l := range lines {
		if len([]rune(l)) > 100 {
			t.Fatalf("line wider than the terminal: %q", l)
		}
	}
}

func TestValidate(t *testing.T) {
	dir, err := FindProfiles()
	if err != nil {
		t.Fatal(err)
	}
	profs, err := schema.LoadProfileDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rover, relay := profs["rover"], profs["relay"]
	_, args, bad := validate(rover, "move", map[string]any{"distance": int64(10)})
	if bad != nil || args["distance"] != 10.0 || args["speed"] != 0.5 {
		t.Fatalf("move 10: %v %v", args, bad)
	}
	_, args, bad = validate(rover, "mode", map[string]any{"mode": "SPORT"})
	if bad != nil || args["mode"] != "sport" {
		t.Fatalf("mode SPORT: %v %v", args, bad)
	}
	_, args, bad = validate(relay, "pulse", map[string]any{"channel": 2.0})
	if bad != nil || args["channel"] != int64(2) || args["duration"] != int64(500) {
		t.Fatalf("pulse 2: %v %v", args, bad)
	}
	for _, c := range []struct {
		p    *schema.Profile
		verb string
		args map[string]any
		code wire.ReplyCode
	}{
		{rover, "Move", map[string]any{"distance": 1.0}, wire.ReplyUnknownVerb},
		{rover, "help", nil, wire.ReplyUnknownVerb},
		{relay, "pulse", map[string]any{"channel": 2.5}, wire.ReplyBadArgument},
		{relay, "on", map[string]any{"channel": int64(9)}, wire.ReplyBadArgument},
		{relay, "on", map[string]any{"channel": "1"}, wire.ReplyBadArgument},
		{rover, "say", map[string]any{"phrase": strings.Repeat("x", rover.Command("say").Arg("phrase").MaxLen+1)}, wire.ReplyBadArgument},
		{rover, "lights", map[string]any{"state": int64(1)}, wire.ReplyBadArgument},
		{rover, "move", map[string]any{"distance": []byte{1}}, wire.ReplyBadArgument},
	} {
		if _, _, bad := validate(c.p, c.verb, c.args); bad == nil || bad.code != c.code {
			t.Errorf("%s %v: %+v, want %s", c.verb, c.args, bad, c.code)
		}
	}
}
