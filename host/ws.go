package host

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Browsers cannot open a TCP socket, so Options.WSListen serves them over
// HTTP: the game's page (webclient/, embedded: the host needs no files and
// no CDN) at "/", and at "/ws" a WebSocket carrying the line protocol, one
// text message per line each way without the newline: `login 42 <ticket>`,
// `work`; `ok ...`, `err <code> ...`. A WebSocket session is a session
// like a TCP one: serveConn runs it (login tickets, MaxFrame, bad frames,
// the idle timeout, the watchdog), only its Codec differs.

// wsPath is where the page opens its WebSocket.
const wsPath = "/ws"

//go:embed webclient
var webclientFiles embed.FS

// wsCodec is the line protocol over WebSocket messages. It writes through
// a lineCodec, whose every line (reply or push) becomes one message, so
// the two codecs cannot drift apart.
type wsCodec struct {
	*lineCodec // writes, and holds MaxFrame; ReadFrame below reads messages
	ws         *websocket.Conn
	buf        []byte // MaxFrame and a line end: ParseFrame judges what fits, a fuller message is too long
}

func newWSCodec(ws *websocket.Conn, maxFrame int) *wsCodec {
	// The codec bounds messages itself, answering `err frame` and going on
	// as the line codec does; the library's limit would close the socket.
	ws.SetReadLimit(-1)
	lines := &wsLines{ws: ws}
	return &wsCodec{lineCodec: &lineCodec{wr: lines, max: maxFrame}, ws: ws,
		buf: make([]byte, maxFrame+2)}
}

// wsLines sends each line written to it as one text message, without its
// newline.
type wsLines struct {
	ws      *websocket.Conn
	pending []byte // the start of a line longer than the writer's buffer
}

func (w *wsLines) Write(p []byte) (int, error) {
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			return len(p), nil
		}
		if err := w.ws.Write(context.Background(), websocket.MessageText, w.pending[:i]); err != nil {
			w.pending = w.pending[:0]
			return 0, err
		}
		w.pending = w.pending[:copy(w.pending, w.pending[i+1:])]
	}
}

// ReadFrame reads one message. The session's read deadline is set on the
// TCP connection beneath, so an idle client ends here with an error that
// wraps os.ErrDeadlineExceeded and the socket still takes the `err idle`.
func (c *wsCodec) ReadFrame() (Frame, error) {
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return Frame{}, wsReadError(err)
	}
	n, err := io.ReadFull(r, c.buf)
	switch {
	case err == nil: // the buffer is full: the message may go on
		more, err := io.Copy(io.Discard, r) // so that the next message starts clean
		if err != nil {
			return Frame{}, wsReadError(err)
		}
		if more > 0 {
			return Frame{}, fmt.Errorf("%w: longer than %d bytes", ErrBadFrame, c.max)
		}
	case err == io.EOF || err == io.ErrUnexpectedEOF: // the whole message, shorter than the buffer (ReadFull's own values)
	default:
		return Frame{}, wsReadError(err)
	}
	if typ != websocket.MessageText {
		return Frame{}, fmt.Errorf("%w: a binary message; send the command as text", ErrBadFrame)
	}
	return ParseFrame(c.buf[:n], c.max)
}

// wsReadError turns a peer's normal close into io.EOF: the session ends
// quietly, as when a TCP client hangs up.
func wsReadError(err error) error {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway:
		return io.EOF
	}
	return err
}

// wsServer is the WebSocket listener's HTTP server.
type wsServer struct {
	ln    net.Listener
	srv   *http.Server
	slots chan struct{} // connection slots: Options.MaxConns, apart from the TCP listener's
	// mu is held shared while a handler admits a session (tracked and
	// counted in connsDone) and exclusively by stop: once stop returns no
	// session is admitted, so the drain that follows sees every session.
	mu     sync.RWMutex
	closed bool
}

type rawConnKey struct{}

// listenWS binds Options.WSListen (nil, nil when it is empty); serve
// starts serving it.
func (h *Host[T, C]) listenWS() (*wsServer, error) {
	if h.opts.WSListen == "" {
		return nil, nil
	}
	page, err := fs.Sub(webclientFiles, "webclient")
	if err != nil {
		return nil, fmt.Errorf("host: web client files: %w", err)
	}
	ln, err := net.Listen("tcp", h.opts.WSListen)
	if err != nil {
		return nil, fmt.Errorf("host: listen for WebSocket clients: %w", err)
	}
	ws := &wsServer{ln: ln, slots: make(chan struct{}, h.opts.MaxConns)}
	mux := http.NewServeMux()
	mux.Handle("GET /", pageHeaders(http.FileServerFS(page)))
	mux.HandleFunc("GET "+wsPath, func(w http.ResponseWriter, r *http.Request) { h.serveWS(ws, w, r) })
	ws.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		// The session sets its idle deadline on, and closes, the TCP
		// connection itself, as a TCP session does.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, rawConnKey{}, c)
		},
	}
	h.log.Info("serving browsers", "page", "http://"+ln.Addr().String()+"/", "websocket", ln.Addr().String())
	return ws, nil
}

func (ws *wsServer) serve() {
	if ws != nil {
		go ws.srv.Serve(ws.ln)
	}
}

// stop closes the listener and admission. Sessions already admitted are
// the drain's to close, like TCP sessions. Safe to call twice, and on nil.
func (ws *wsServer) stop() {
	if ws == nil {
		return
	}
	ws.mu.Lock()
	ws.closed = true
	ws.mu.Unlock()
	ws.srv.Close() // HTTP connections that are not sessions, and the listener once served
	ws.ln.Close()  // the listener if it never was
}

// pageHeaders keeps the page to itself: no scripts but its own, no
// framing, and a fresh copy after a host upgrade.
func pageHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}

// serveWS upgrades a request to a WebSocket and runs its session in this
// handler's goroutine. The library refuses pages of other origins.
func (h *Host[T, C]) serveWS(ws *wsServer, w http.ResponseWriter, r *http.Request) {
	raw, ok := r.Context().Value(rawConnKey{}).(net.Conn)
	if !ok {
		http.Error(w, "no connection to upgrade", http.StatusInternalServerError)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		h.log.Debug("websocket handshake refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	codec := newWSCodec(c, h.opts.MaxFrame)
	s, refusal := h.admitWS(ws, raw, codec)
	if s == nil {
		raw.SetWriteDeadline(time.Now().Add(time.Second))
		codec.WriteReply(refusal)
		c.CloseNow()
		return
	}
	h.runSession(s, nil)
}

// admitWS takes a connection slot and registers the session, or says why not.
func (h *Host[T, C]) admitWS(ws *wsServer, raw net.Conn, codec Codec) (*session, Reply) {
	draining := errReply("draining", "server is shutting down; reconnect shortly")
	ws.mu.RLock()
	defer ws.mu.RUnlock()
	if ws.closed {
		return nil, draining
	}
	select {
	case ws.slots <- struct{}{}:
	default:
		h.metrics.refused.Inc()
		return nil, errReply("full", "too many connections (%d); retry later", h.opts.MaxConns)
	}
	s := newSession(raw, codec, func() { <-ws.slots })
	if !h.track(s, nil) {
		s.release()
		return nil, draining
	}
	h.connsDone.Add(1) // under mu: before stop returns, so before the drain waits
	return s, Reply{}
}
