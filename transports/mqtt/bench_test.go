package mqtt

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
	"github.com/mesibo-iot/mesibo-iot/transports"
)

// benchSink passes replies to a channel.
type benchSink struct{ replies chan uint64 }

func (s *benchSink) Reply(dev string, r *wire.Reply)      { s.replies <- r.ID }
func (s *benchSink) Telemetry(string, *wire.Telemetry)    {}
func (s *benchSink) Presence(string, transports.Presence) {}
func (s *benchSink) Dropped(string, error)                {}
func (s *benchSink) Link(string, bool, string)            {}

// BenchmarkRoundTrip measures one command's round trip on Mosquitto
// (set_tcp_nodelay true, loopback, QoS 1 both ways):
//
//	bridge:    Transport.Send → broker → device → broker → Sink.Reply
//	bare-paho: the same with two bare paho clients: publish the request,
//	           wait for PUBACK, wait for the response (the baseline)
//
// Both report p50 and p99 in µs besides ns/op.
func BenchmarkRoundTrip(b *testing.B) {
	needMosquitto(b)
	br := startMosquitto(b, "tcp", "")
	url := br.URL()
	cmd := &wire.Command{ID: 1, Verb: "set", Args: map[string]any{"speed": int64(3)}, IdemKey: "alice/123"}

	b.Run("bridge", func(b *testing.B) {
		tr, err := New(Options{Brokers: []string{url}, TopicPrefix: "bench", BridgeID: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if err := tr.SetEndpoints([]transports.Endpoint{{DeviceID: "d1"}}); err != nil {
			b.Fatal(err)
		}
		sink := &benchSink{replies: make(chan uint64, 16)}
		if err := tr.Start(context.Background(), sink); err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
		dev := newTestDevice(b, url, "bench", "d1")
		dev.answer = func(c *wire.Command) []wire.Reply { return []wire.Reply{{ID: c.ID, Outcome: wire.OutcomeDone}} }
		deadline := time.Now().Add(5 * time.Second)
		for {
			tr.mu.Lock()
			up := tr.conn != nil && tr.presOnline["d1"]
			tr.mu.Unlock()
			if up {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("bridge not connected")
			}
			time.Sleep(time.Millisecond)
		}
		lat := make([]time.Duration, 0, b.N)
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			c := *cmd
			c.ID = uint64(i + 1)
			start := time.Now()
			if err := tr.Send(ctx, "d1", &c); err != nil {
				b.Fatal(err)
			}
			for id := range sink.replies {
				if id == c.ID {
					break
				}
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		report(b, lat)
	})

	b.Run("bare-paho", func(b *testing.B) {
		req, _ := wire.MarshalCommand(cmd)
		resp, _ := wire.MarshalReply(&wire.Reply{ID: 1, Device: "d1", Outcome: wire.OutcomeDone})
		mk := func(id string) paho.Client {
			o := paho.NewClientOptions().AddBroker(url).SetClientID(id).SetOrderMatters(false).
				SetAutoReconnect(false).SetProtocolVersion(4).SetStore(paho.NewMemoryStore())
			c := paho.NewClient(o)
			if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				b.Fatalf("connect: %v", tok.Error())
			}
			return c
		}
		responder, requester := mk("bare-responder"), mk("bare-requester")
		defer responder.Disconnect(50)
		defer requester.Disconnect(50)
		if tok := responder.Subscribe("bare/req", 1, func(c paho.Client, m paho.Message) {
			c.Publish("bare/resp", 1, false, resp)
		}); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		got := make(chan struct{}, 16)
		if tok := requester.Subscribe("bare/resp", 1, func(paho.Client, paho.Message) { got <- struct{}{} }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			tok := requester.Publish("bare/req", 1, false, req)
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				b.Fatal(tok.Error())
			}
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				b.Fatal("no response")
			}
			lat = append(lat, time.Since(start))
		}
		b.StopTimer()
		report(b, lat)
	})
}

func report(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(p(0.50), "p50-µs")
	b.ReportMetric(p(0.99), "p99-µs")
	if testing.Verbose() {
		fmt.Printf("%s: n=%d p50=%.0fµs p99=%.0fµs max=%v\n", b.Name(), len(lat), p(0.5), p(0.99), lat[len(lat)-1])
	}
}
