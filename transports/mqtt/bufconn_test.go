package mqtt

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// countingConn counts the reads that reach the connection (each one a
// system call on a TCP socket).
type countingConn struct {
	net.Conn
	reads atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// paho's packet reader through bufConn gets every packet intact, in order,
// and a burst of packets costs a few reads of the connection instead of
// three or more per packet.
func TestBufConnPacketsIntactFewerReads(t *testing.T) {
	const n = 200
	var burst bytes.Buffer
	for i := 1; i <= n; i++ {
		var p packets.ControlPacket
		if i%2 == 0 {
			ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
			ack.MessageID = uint16(i)
			p = ack
		} else {
			pub := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			pub.Qos, pub.MessageID, pub.TopicName = 1, uint16(i), "iot/dev/reply"
			pub.Payload = bytes.Repeat([]byte{byte(i)}, i*3) // up to 600 bytes: a two-byte remaining length too
			p = pub
		}
		if err := p.Write(&burst); err != nil {
			t.Fatal(err)
		}
	}
	for _, buffered := range []bool{false, true} {
		a, b := net.Pipe()
		cc := &countingConn{Conn: a}
		var conn net.Conn = cc
		if buffered {
			conn = newBufConn(cc)
		}
		go func() {
			_, _ = b.Write(burst.Bytes()) // one write: the socket holds the whole burst
			_ = b.Close()
		}()
		for i := 1; i <= n; i++ {
			cp, err := packets.ReadPacket(conn)
			if err != nil {
				t.Fatalf("buffered=%v: packet %d: %v", buffered, i, err)
			}
			var id uint16
			switch p := cp.(type) {
			case *packets.PubackPacket:
				id = p.MessageID
			case *packets.PublishPacket:
				id = p.MessageID
				if len(p.Payload) != i*3 || (len(p.Payload) > 0 && p.Payload[0] != byte(i)) {
					t.Fatalf("buffered=%v: packet %d: payload of %d bytes, want %d", buffered, i, len(p.Payload), i*3)
				}
			}
			if int(id) != i {
				t.Fatalf("buffered=%v: packet %d has id %d", buffered, i, id)
			}
		}
		_ = a.Close()
		reads := cc.reads.Load()
		t.Logf("buffered=%v: %d packets, %d reads of the connection", buffered, n, reads)
		if buffered && reads > int64(burst.Len()/readBufferSize+3) {
			t.Fatalf("buffered: %d reads for %d bytes; want a few", reads, burst.Len())
		}
		if !buffered && reads < 3*n {
			t.Fatalf("unbuffered: only %d reads for %d packets: paho no longer reads a byte at a time, bufConn may be unneeded", reads, n)
		}
	}
}
