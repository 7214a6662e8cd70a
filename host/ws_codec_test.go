package host

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A reply longer than the line writer's buffer still leaves as one message,
// and a reply's newlines are blanked as on the line protocol.
func TestWSCodecWritesOneMessagePerLine(t *testing.T) {
	long := strings.Repeat("x", 3000)
	served := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			served <- err
			return
		}
		defer c.CloseNow()
		codec := newWSCodec(c, 1024)
		for _, rep := range []Reply{okReply("%s\nnext", long), errReply("code", "short")} {
			if err := codec.WriteReply(rep); err != nil {
				served <- err
				return
			}
		}
		f, err := codec.ReadFrame() // hold the socket until the client is done
		if err == nil && f.Cmd != "quit" {
			t.Errorf("server read %+v, want quit", f)
		}
		served <- err
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for _, want := range []string{"ok " + long + " next", "err code short"} {
		typ, msg, err := c.Read(ctx)
		if err != nil || typ != websocket.MessageText || string(msg) != want {
			t.Fatalf("read %v %.40q %v, want the text message %.40q", typ, msg, err, want)
		}
	}
	if err := c.Write(ctx, websocket.MessageText, []byte("quit")); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("server side: %v", err)
	}
}
