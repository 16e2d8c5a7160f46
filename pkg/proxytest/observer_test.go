package proxytest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// TestObserver: the observer sees every byte forwarded in its direction, in order and
// with its connection's number, after the receiver could read it; and a blocking
// observer holds the connection's bytes back until it returns.
func TestObserver(t *testing.T) {
	var mu sync.Mutex
	seen := map[int64][]byte{}
	release := make(chan struct{})
	p := New(t, server(t, echo), WithObserver(Downstream, func(conn int64, b []byte) {
		mu.Lock()
		seen[conn] = append(seen[conn], b...)
		mu.Unlock()
		if bytes.Contains(b, []byte("stop")) {
			<-release
		}
	}))
	for conn, msg := range map[int64]string{1: "first connection", 2: "second connection"} {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		c.Close()
		mu.Lock()
		if string(seen[conn]) != msg {
			t.Errorf("observer saw %q on connection %d, want %q", seen[conn], conn, msg)
		}
		mu.Unlock()
	}

	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("stop")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	// The observer blocks on "stop": what follows waits for it.
	if _, err := c.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	read := make(chan string, 1)
	go func() {
		b := make([]byte, 4)
		io.ReadFull(c, b)
		read <- string(b)
	}()
	select {
	case s := <-read:
		t.Fatalf("read %q while the observer held the connection", s)
	default:
	}
	close(release)
	if s := <-read; s != "more" {
		t.Errorf("after the observer returned, read %q, want %q", s, "more")
	}
}
