package host

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hothost/hothost/internal/resume"
)

// Codec reads client frames and writes replies on one connection. The line
// codec is one; a binary or WebSocket codec implements the same methods.
type Codec interface {
	// ReadFrame returns the next frame. A frame error that leaves the
	// stream usable wraps ErrBadFrame; any other error ends the session.
	ReadFrame() (Frame, error)
	// WriteReply sends one reply.
	WriteReply(Reply) error
	// WritePush sends one push, told apart from replies by the client.
	WritePush(text string) error
}

// Frame is one client request: a command and its arguments, and the
// client's tag for it (`#17 work`), which its reply carries back and which
// makes a retried request be answered, not run again.
type Frame struct {
	Cmd  string
	Args []string
	Tag  string
	// End is the request's end offset in its connection's byte stream,
	// for a session kept in shared memory (stream.go); else 0.
	End uint64
}

// Reply is one answer: ok with text, or an error code and message, tagged
// with its request's tag.
type Reply struct {
	OK   bool
	Code string // when !OK: one word
	Text string
	Tag  string
	line []byte // a whole reply line kept from before (tag included): written as is
}

// appendReply appends r as one protocol line: `[#tag ]ok text` or
// `[#tag ]err code text`.
func appendReply(b []byte, r Reply) []byte {
	if r.line != nil {
		return append(b, r.line...)
	}
	if r.Tag != "" {
		b = append(b, '#')
		b = append(b, r.Tag...)
		b = append(b, ' ')
	}
	if r.OK {
		b = append(b, "ok"...)
	} else {
		b = append(b, "err "...)
		b = append(b, r.Code...)
	}
	if text := oneLine(r.Text); text != "" {
		b = append(b, ' ')
		b = append(b, text...)
	}
	return append(b, '\n')
}

// appendPush appends `push <text>`: a line no reply starts with, so a
// client tells the two apart.
func appendPush(b []byte, text string) []byte {
	b = append(b, "push "...)
	b = append(b, oneLine(text)...)
	return append(b, '\n')
}

func okReply(format string, args ...any) Reply {
	return Reply{OK: true, Text: fmt.Sprintf(format, args...)}
}

func errReply(code, format string, args ...any) Reply {
	return Reply{Code: code, Text: fmt.Sprintf(format, args...)}
}

// ErrBadFrame marks a frame the client got wrong (too long, not UTF-8,
// control bytes, empty); the session answers `err frame ...` and goes on
// until too many of them.
var ErrBadFrame = errors.New("bad frame")

// maxArgs bounds the words in one frame.
const maxArgs = 16

// lineCodec is the text protocol a person can drive from nc: one request per
// line (`work`, `buy sword`), answered by `ok ...` or `err <code> <message>`.
type lineCodec struct {
	r   *bufio.Reader
	wr  io.Writer
	buf []byte
	max int
}

func newLineCodec(rw io.ReadWriter, maxFrame int) *lineCodec {
	return &lineCodec{r: bufio.NewReaderSize(rw, maxFrame+2), wr: rw, buf: make([]byte, 0, 256), max: maxFrame}
}

func (c *lineCodec) ReadFrame() (Frame, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Skip the rest of the oversized line so the next frame starts clean.
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = c.r.ReadSlice('\n')
		}
		if err != nil {
			return Frame{}, err
		}
		return Frame{}, fmt.Errorf("%w: longer than %d bytes", ErrBadFrame, c.max)
	}
	if err != nil {
		if len(line) > 0 && errors.Is(err, io.EOF) {
			return Frame{}, io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return ParseFrame(line, c.max)
}

// ParseFrame parses one line (with or without its newline) of the text
// protocol. It never panics, whatever the bytes.
func ParseFrame(line []byte, maxFrame int) (Frame, error) {
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if len(line) > maxFrame {
		return Frame{}, fmt.Errorf("%w: longer than %d bytes", ErrBadFrame, maxFrame)
	}
	if !utf8.Valid(line) {
		return Frame{}, fmt.Errorf("%w: not UTF-8", ErrBadFrame)
	}
	for _, b := range line {
		if b < 0x20 && b != '\t' || b == 0x7f {
			return Frame{}, fmt.Errorf("%w: control byte %#02x", ErrBadFrame, b)
		}
	}
	words := strings.Fields(string(line))
	tag := ""
	if len(words) > 0 && strings.HasPrefix(words[0], "#") {
		tag, words = words[0][1:], words[1:]
		if err := checkTag(tag); err != nil {
			return Frame{}, err
		}
	}
	if len(words) == 0 {
		return Frame{}, fmt.Errorf("%w: empty", ErrBadFrame)
	}
	if len(words) > maxArgs+1 {
		return Frame{}, fmt.Errorf("%w: more than %d arguments", ErrBadFrame, maxArgs)
	}
	return Frame{Cmd: strings.ToLower(words[0]), Args: words[1:], Tag: tag}, nil
}

// maxTag is the longest request tag (resume.MaxTag).
const maxTag = resume.MaxTag

// checkTag accepts 1 to maxTag letters, digits, '.', '-', '_' and ':'.
func checkTag(tag string) error {
	if tag == "" || len(tag) > maxTag {
		return fmt.Errorf("%w: tag %q must be 1 to %d characters", ErrBadFrame, tag, maxTag)
	}
	for _, r := range tag {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_:", r)) {
			return fmt.Errorf("%w: tag %q holds %q: tags are letters, digits, dot, dash, underscore and colon", ErrBadFrame, tag, r)
		}
	}
	return nil
}

// oneLine keeps a text on one protocol line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s // the common case, without a call per rune
	}
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

func (c *lineCodec) WritePush(text string) error {
	c.buf = appendPush(c.buf[:0], text)
	_, err := c.wr.Write(c.buf)
	return err
}

func (c *lineCodec) WriteReply(r Reply) error {
	c.buf = appendReply(c.buf[:0], r)
	_, err := c.wr.Write(c.buf)
	return err
}

// parsePlayerID accepts a decimal id in [1, 2^64-1].
func parsePlayerID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("player id %q must be a decimal number from 1 to %d", s, uint64(1<<64-1))
	}
	return id, nil
}
