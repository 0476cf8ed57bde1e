package devices

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// genFile writes a devices file with n devices: most on MQTT, some serial,
// a few in memory; ten distinct access-list combinations; one group per
// hundred devices and a subscription per ten.
func genFile(n int) []byte {
	var b strings.Builder
	b.Grow(n * 220)
	b.WriteString(header + "defaults:\n  command_ttl: 10m\n  queue_size: 32\ndevices:\n")
	profiles := []string{"rover", "envsensor", "relay"}
	for i := range n {
		fmt.Fprintf(&b, "  - address: dev%d\n    id: device-%06d\n    name: Device number %d\n    profile: %s\n",
			i, i, i, profiles[i%3])
		switch {
		case i%10 < 7:
			b.WriteString("    transport: mqtt\n")
		case i%10 < 9:
			fmt.Fprintf(&b, "    transport: serial\n    serial:\n      path: /dev/serial/by-id/usb-FTDI_%06d-if00-port0\n      baud: 9600\n", i)
		default:
			b.WriteString("    transport: memory\n")
		}
		fmt.Fprintf(&b, "    owners: [admin%d]\n    operators: [op%d, op%d]\n    viewers: [\"*\"]\n", i%10, i%10, (i+1)%10)
		if i%5 == 0 {
			b.WriteString("    command_ttl: 5m\n    queue_size: 16\n")
		}
	}
	b.WriteString("groups:\n")
	for g := 0; g < n/100; g++ {
		fmt.Fprintf(&b, "  - name: g%d\n    group_id: %d\n    members: [", g, 1000+g)
		for j := range 100 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "dev%d", g*100+j)
		}
		b.WriteString("]\n")
	}
	b.WriteString("subscriptions:\n")
	for i := 1; i < n; i += 30 { // envsensor devices: i%3 == 1
		fmt.Fprintf(&b, "  - {user: admin%d, device: dev%d, when: temp > 30}\n", i%10, i)
	}
	return []byte(b.String())
}

func TestGenFile(t *testing.T) {
	cfg := mustParse(t, string(genFile(1000)))
	if len(cfg.Devices) != 1000 || len(cfg.Groups) != 10 || len(cfg.Subscriptions) != 34 {
		t.Fatalf("%d devices, %d groups, %d subscriptions", len(cfg.Devices), len(cfg.Groups), len(cfg.Subscriptions))
	}
}

func BenchmarkParse10k(b *testing.B) {
	const n = 10_000
	data := genFile(n)
	b.SetBytes(int64(len(data)))

	// Heap kept by one parsed Config, per device.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cfg, err := Parse("devices.yaml", data, fakeLoader)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	retained := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	runtime.KeepAlive(cfg)

	b.ReportAllocs()
	b.ResetTimer()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for b.Loop() {
		if _, err := Parse("devices.yaml", data, fakeLoader); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&ms1)
	b.StopTimer()
	b.ReportMetric(retained/n, "retained-B/device")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/n, "alloc-B/device")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/device")
}
