package rttrace

import (
	"bytes"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/mesibo-iot/mesibo-iot/codecs/wire"
)

func TestPublishID(t *testing.T) {
	cmd, err := wire.MarshalCommand(&wire.Command{ID: 77, Device: "d1", Verb: "set_interval"})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := wire.MarshalReply(&wire.Reply{ID: 78, Device: "d1", Outcome: wire.OutcomeDone})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		qos     byte
		payload []byte
		want    uint64
	}{{1, cmd, 77}, {0, cmd, 77}, {1, rep, 78}} {
		p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
		p.TopicName, p.Qos, p.MessageID, p.Payload = "iot/dev/d1/cmd", c.qos, 9, c.payload
		var b bytes.Buffer
		if err := p.Write(&b); err != nil {
			t.Fatal(err)
		}
		if id, ok := publishID(b.Bytes()); !ok || id != c.want {
			t.Errorf("qos %d: publishID = %d, %v; want %d", c.qos, id, ok, c.want)
		}
	}
	ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
	var b bytes.Buffer
	_ = ack.Write(&b)
	if _, ok := publishID(b.Bytes()); ok {
		t.Error("a PUBACK taken for a PUBLISH")
	}
	if _, ok := publishID([]byte{0x32, 0x7f}); ok {
		t.Error("a truncated PUBLISH decoded")
	}
}

// Off (MESIBO_IOT_TRACE unset in tests), nothing is recorded and Conn
// returns its argument.
func TestOff(t *testing.T) {
	if On() {
		t.Skip(Env + " is set")
	}
	Stamp(BrAccept, 1)
	StampAt(BrAccept, 2, 3)
	if len(buf) != 0 {
		t.Errorf("%d records with the trace off", len(buf))
	}
	if Conn(nil, BrWrote) != nil {
		t.Error("Conn wrapped with the trace off")
	}
	for s := Stage(1); s < numStages; s++ {
		if got, ok := ParseStage(s.String()); !ok || got != s {
			t.Errorf("stage %d: name %q parses to %d", s, s, got)
		}
	}
}
