package proxytest

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
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
	// In order: the proxy numbers connections as it accepts them.
	for i, msg := range []string{"first connection", "second connection"} {
		conn := int64(i + 1)
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
		// The observer runs right after the write, so the client may read first.
		var saw string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			saw = string(seen[conn])
			mu.Unlock()
			if saw == msg || time.Now().After(deadline) {
				break
			}
		}
		if saw != msg {
			t.Errorf("observer saw %q on connection %d, want %q", saw, conn, msg)
		}
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
