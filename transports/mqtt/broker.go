package mqtt

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BrokerOptions configure an embedded broker.
type BrokerOptions struct {
	// Listen is the TCP address, default 127.0.0.1:1883. Port 0 picks a free
	// port (see Broker.Addr).
	Listen string
	// Users maps user names to passwords. Empty allows every client
	// (anonymous included) to publish and subscribe to everything.
	Users map[string]string
	// TLS, when set, makes the listener speak TLS.
	TLS *tls.Config
	// Logf receives the broker's warnings and errors (0 error, 1 warn,
	// 3 debug). Nil discards them; nothing is written to stdout or stderr.
	Logf func(level int, msg string)
}

// Broker is an embedded MQTT broker (mochi-mqtt), for small setups, the
// firmware simulator and tests. It keeps nothing on disk.
type Broker struct {
	srv       *mochi.Server
	addr      string
	closeOnce sync.Once
	stop      func() bool
}

// StartBroker starts a broker listening on opts.Listen. It is stopped by
// Close or when ctx is done.
func StartBroker(ctx context.Context, opts BrokerOptions) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	listen := opts.Listen
	if listen == "" {
		listen = DefaultEmbeddedListen
	}
	srv := mochi.New(&mochi.Options{
		Logger: slog.New(&slogHandler{logf: opts.Logf}),
	})
	var hook mochi.Hook = &auth.AllowHook{}
	if len(opts.Users) > 0 {
		users := make(map[string][]byte, len(opts.Users))
		for u, p := range opts.Users {
			users[u] = []byte(p)
		}
		hook = &userHook{users: users}
	}
	if err := srv.AddHook(hook, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	sess := &sessions{byConn: map[net.Conn]*session{}, byID: map[string]*session{}}
	if err := srv.AddHook(&sessionHook{s: sess}, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	l := &tcpListener{id: "mesibo-iot", addr: listen, tls: opts.TLS, logf: logger(opts.Logf), sess: sess, served: make(chan struct{})}
	if err := srv.AddListener(l); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", listen, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	b := &Broker{srv: srv, addr: l.Address()}
	b.stop = context.AfterFunc(ctx, func() { _ = b.Close() })
	return b, nil
}

// Addr returns the address the broker listens on (host:port).
func (b *Broker) Addr() string { return b.addr }

// Close disconnects every client, stops the listener and waits for the
// broker's client goroutines. It may be called more than once.
func (b *Broker) Close() error {
	var err error
	b.closeOnce.Do(func() {
		if b.stop != nil {
			b.stop()
		}
		err = b.srv.Close()
	})
	return err
}

// userHook accepts clients whose user name and password are in users and
// lets them publish and subscribe to every topic.
type userHook struct {
	mochi.HookBase
	users map[string][]byte
}

func (h *userHook) ID() string { return "mesibo-iot-users" }

func (h *userHook) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (h *userHook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	want, ok := h.users[string(pk.Connect.Username)]
	if !ok {
		// compare anyway so that unknown users take as long as known ones
		subtle.ConstantTimeCompare(pk.Connect.Password, pk.Connect.Password)
		return false
	}
	return len(pk.Connect.Password) == len(want) && subtle.ConstantTimeCompare(pk.Connect.Password, want) == 1
}

func (h *userHook) OnACLCheck(cl *mochi.Client, topic string, write bool) bool { return true }

// tcpListener is the broker's TCP listener. It replaces mochi's own, whose
// Close can deadlock (mochi v2.7.9: Server.Close → Clients.GetByListener takes
// a read lock twice, and a client leaving at that moment queues a write lock
// between the two). This one closes its own connections and waits for their
// goroutines, without touching mochi's client list; it also recovers panics
// in mochi's per-connection code.
type tcpListener struct {
	id, addr string
	tls      *tls.Config
	logf     logger

	sess *sessions

	ln      net.Listener
	mu      sync.Mutex
	closed  bool
	started bool
	wg      sync.WaitGroup
	served  chan struct{} // closed when Serve returns
}

func (l *tcpListener) ID() string       { return l.id }
func (l *tcpListener) Protocol() string { return "tcp" }

func (l *tcpListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *tcpListener) Init(_ *slog.Logger) error {
	var err error
	if l.tls != nil {
		l.ln, err = tls.Listen("tcp", l.addr, l.tls)
	} else {
		l.ln, err = net.Listen("tcp", l.addr)
	}
	return err
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed || l.started {
		l.mu.Unlock()
		return
	}
	l.started = true
	l.mu.Unlock()
	defer close(l.served)
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = conn.Close()
			return
		}
		se := l.sess.add(conn)
		l.wg.Add(1)
		l.mu.Unlock()
		go func() {
			defer l.wg.Done()
			defer func() {
				_ = conn.Close()
				l.sess.done(se)
			}()
			defer l.logf.recoverLog("embedded broker connection")
			if err := establish(l.id, conn); err != nil {
				l.logf.printf(LevelDebug, "embedded broker: client %s: %v", conn.RemoteAddr(), err)
			}
		}()
	}
}

// Close stops accepting, closes every connection and waits for their
// goroutines (mochi's own client close function is not used).
func (l *tcpListener) Close(_ listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	started := l.started
	l.sess.closeAll()
	l.mu.Unlock()
	if l.ln != nil {
		_ = l.ln.Close()
	}
	if started {
		<-l.served
	}
	l.wg.Wait()
}

// sessions serialises connections that use the same client id. mochi v2.7.9
// has a race when a client reconnects with its id while the goroutine of its
// previous connection is still finishing: that goroutine's cleanup deletes the
// client entry and subscriptions by id, which are by then the new
// connection's, so the new session silently receives nothing. A device that
// reconnects quickly hits it. The OnConnect hook below closes the previous
// connection of the id (the broker would take it over anyway, sending its
// last will) and waits, up to 2 s, until its goroutine has finished.
type sessions struct {
	mu     sync.Mutex
	byConn map[net.Conn]*session
	byID   map[string]*session
}

type session struct {
	conn net.Conn
	id   string
	end  chan struct{}
}

func (s *sessions) add(c net.Conn) *session {
	se := &session{conn: c, end: make(chan struct{})}
	s.mu.Lock()
	s.byConn[c] = se
	s.mu.Unlock()
	return se
}

func (s *sessions) done(se *session) {
	s.mu.Lock()
	delete(s.byConn, se.conn)
	if s.byID[se.id] == se {
		delete(s.byID, se.id)
	}
	s.mu.Unlock()
	close(se.end)
}

func (s *sessions) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.byConn {
		_ = c.Close()
	}
}

// claim makes the connection c the live one for id and returns the
// previous one, if any.
func (s *sessions) claim(c net.Conn, id string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	me := s.byConn[c]
	old := s.byID[id]
	if me != nil {
		me.id = id
		s.byID[id] = me
	}
	if old == me {
		return nil
	}
	return old
}

type sessionHook struct {
	mochi.HookBase
	s *sessions
}

func (h *sessionHook) ID() string { return "mesibo-iot-sessions" }

func (h *sessionHook) Provides(b byte) bool { return b == mochi.OnConnect }

func (h *sessionHook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	old := h.s.claim(cl.Net.Conn, cl.ID)
	if old == nil {
		return nil
	}
	_ = old.conn.Close()
	timer := time.NewTimer(2 * time.Second)
	defer timer.Stop()
	select {
	case <-old.end:
	case <-timer.C:
	}
	return nil
}
