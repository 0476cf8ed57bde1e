package mqtt

import (
	"bufio"
	"net"
)

// readBufferSize is the read buffer put in front of the broker connection.
// paho reads every packet with at least three reads (the type byte, the
// remaining length a byte at a time, then the rest: packets.ReadPacket), each
// a system call on a bare connection; with this buffer one read takes
// whatever the socket holds, usually several packets under load.
const readBufferSize = 16 << 10

// bufConn is a net.Conn whose reads go through a buffer. paho reads from one
// goroutine at a time (the CONNACK, then its incoming loop), so the buffer
// needs no lock; writes, deadlines and Close go to the connection itself.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func newBufConn(c net.Conn) net.Conn {
	return &bufConn{Conn: c, r: bufio.NewReaderSize(c, readBufferSize)}
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }
