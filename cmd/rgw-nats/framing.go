package main

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
)

// A request that declares both Content-Length and Transfer-Encoding frames
// its body two ways: net/http follows Transfer-Encoding (RFC 9112) and
// drops Content-Length from the header, but a proxy in front may have
// followed Content-Length, and what is left on the connection would then be
// read as the next request (request smuggling). Such a request is answered
// and its connection closed. net/http hides the fact from handlers, so the
// connection's bytes are watched as they are read.

// framingListener hands out framingConns.
type framingListener struct{ net.Listener }

func (l framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c}, nil
}

// framingConn notes a request head with both Content-Length and
// Transfer-Encoding among what was read. It reads header names at line
// starts only; body bytes can look like a head, and then cost nothing but
// one closed connection.
type framingConn struct {
	net.Conn
	ambiguous atomic.Bool

	// Read runs on one goroutine at a time (net/http's connection reader).
	line       [len("transfer-encoding:")]byte
	n          int  // bytes of the current line kept in line
	blank      bool // the current line is empty so far (a CR at most)
	length, te bool // seen in the current head
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for _, b := range p[:n] {
		c.scan(b)
	}
	return n, err
}

func (c *framingConn) scan(b byte) {
	if b == '\n' {
		if c.blank { // end of a head
			if c.length && c.te {
				c.ambiguous.Store(true)
			}
			c.length, c.te = false, false
		}
		c.n, c.blank = 0, true
		return
	}
	if b != '\r' {
		c.blank = false
	}
	if c.n < len(c.line) {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		c.line[c.n] = b
		c.n++
		switch string(c.line[:c.n]) {
		case "content-length:":
			c.length = true
		case "transfer-encoding:":
			c.te = true
		}
	}
}

type framingKey struct{}

// framingContext keeps the connection where the handler can ask it.
func framingContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingKey{}, fc)
	}
	return ctx
}

// closeAmbiguous answers a request whose connection sent a head with both
// framings with Connection: close, then lets h answer it.
func closeAmbiguous(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fc, ok := r.Context().Value(framingKey{}).(*framingConn); ok && fc.ambiguous.Load() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}
