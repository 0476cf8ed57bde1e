//go:build linux

package serial

import (
	"context"
	"testing"
	"time"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

// BenchmarkTelemetryThroughput115200: a device streams telemetry through a
// pty paced like a 115200 baud 8N1 line (11,520 bytes/s each way: the
// device's frames and the bridge's ACKs both take their wire time). One
// telemetry envelope per op. Reports what reaches the Sink:
//
//	payload-B/s   envelope (CBOR) bytes delivered per second
//	wire-B/s      bytes the device put on the line per second (COBS, header, CRC, delimiters, heartbeats)
//	pct-of-wire   wire-B/s as a share of 11,520 B/s
func BenchmarkTelemetryThroughput115200(b *testing.B) {
	const rate = 115200 / 10.0
	mem := newMemory()
	dev := startDevice(b, mem, devOpts{id: "env-01"})
	dev.port.set(func(p *devPort) { p.inPace.rate = rate })
	dev.port.lineMu.Lock()
	dev.port.outPace.rate = rate
	dev.port.lineMu.Unlock()
	o := DefaultOptions()
	o.ReconnectMin = 20 * time.Millisecond
	tr, sink := startTransport(b, o, serialEP("env-01", dev.path))
	waitFor(b, 10*time.Second, "online", func() bool { return sink.onlineCount("env-01") == 1 && dev.link.Up() })
	_ = tr

	values := map[string]wire.Value{"temp": 21.375, "humidity": 48.5, "pressure": 1013.2, "co2": int64(612), "battery": 3.71}
	sample, _ := wire.Marshal(&wire.Envelope{Kind: wire.KindTelemetry, Telemetry: &wire.Telemetry{Device: "env-01", Seq: 1000, TS: time.Now().UnixMilli(), Values: values}})
	frame, _ := wire.AppendFrame(nil, wire.Frame{Type: wire.FrameData, Seq: 1000, Payload: sample})
	b.Logf("telemetry envelope %d bytes, %d on the wire", len(sample), len(frame))

	base := dev.link.Stats()
	var payload int
	b.ResetTimer()
	start := time.Now()
	// queued without waiting for each ACK: the link keeps its window of
	// frames on the line (docs/protocol.md §8.6), as a streaming device does
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(b.N+100)*100*time.Millisecond)
	defer cancel()
	results := make(chan (<-chan error), 64)
	errc := make(chan error, 1)
	go func() {
		var first error
		for ch := range results {
			if err := <-ch; err != nil && first == nil {
				first = err
			}
		}
		errc <- first
	}()
	for i := 0; i < b.N; i++ {
		env := &wire.Envelope{Kind: wire.KindTelemetry, Telemetry: &wire.Telemetry{Device: "env-01", Seq: uint64(i + 1), TS: time.Now().UnixMilli(), Values: values}}
		p, _ := wire.Marshal(env)
		payload += len(p)
		ch, err := dev.link.Queue(ctx, env)
		if err != nil {
			b.Fatal(err)
		}
		results <- ch
	}
	close(results)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	waitFor(b, 30*time.Second, "all telemetry delivered", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.telemetry["env-01"]) >= b.N
	})
	el := time.Since(start).Seconds()
	b.StopTimer()
	st := dev.link.Stats()
	wireBytes := float64(st.BytesOut - base.BytesOut)
	b.ReportMetric(float64(payload)/el, "payload-B/s")
	b.ReportMetric(wireBytes/el, "wire-B/s")
	b.ReportMetric(100*wireBytes/el/rate, "pct-of-wire")
	b.ReportMetric(float64(st.Retransmits-base.Retransmits), "retransmits")
}

// BenchmarkCommandRoundTrip: Send a command through a pty (no pacing) and
// wait for the device's done reply.
func BenchmarkCommandRoundTrip(b *testing.B) {
	mem := newMemory()
	dev := startDevice(b, mem, devOpts{id: "relay-01"})
	o := DefaultOptions()
	o.ReconnectMin = 20 * time.Millisecond
	tr, sink := startTransport(b, o, serialEP("relay-01", dev.path))
	waitFor(b, 10*time.Second, "online", func() bool { return sink.onlineCount("relay-01") == 1 })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := newCmd("toggle")
		if err := sendCmd(b, tr, "relay-01", c); err != nil {
			b.Fatal(err)
		}
		for !sink.hasOutcome(c.ID, wire.OutcomeDone) {
			<-sink.notify
		}
	}
}
