package host

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseFrame feeds arbitrary bytes to the text protocol's frame parser
// and to the line codec reading them as a stream. Neither may panic or
// loop; a frame ParseFrame accepts must hold only what the protocol allows
// (a lower-case command, at most maxArgs arguments, no blanks or control
// bytes in a word) and must round-trip: written back as words separated by
// one space, it parses to the same frame.
func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		"work\n", "BUY  sword \r\n", "name Ada\tLovelace", "login 42", "", "\n", " \t ",
		"x\x00y", "\xff\xfe", "a b c d e f g h i j k l m n o p q r s", strings.Repeat("w", 2000),
		"İSTANBUL", "ȺȾ", "name \u00a0Ada\u0085", "work\rwork\n", "\x7f",
	} {
		f.Add([]byte(s), uint16(1024))
	}
	f.Add([]byte("work"), uint16(3))
	f.Add([]byte("login 1\nwork\nbuy potion\n"), uint16(16))
	f.Fuzz(func(t *testing.T, line []byte, max16 uint16) {
		maxFrame := int(max16)
		fr, err := ParseFrame(line, maxFrame)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("ParseFrame(%q) = %v, not an ErrBadFrame", line, err)
			}
		} else {
			checkFrame(t, line, fr)
			again := []byte(strings.Join(append([]string{fr.Cmd}, fr.Args...), " "))
			fr2, err := ParseFrame(again, len(again))
			if err != nil {
				t.Fatalf("frame %+v from %q written back as %q does not parse: %v", fr, line, again, err)
			}
			if fr2.Cmd != fr.Cmd || !slices.Equal(fr2.Args, fr.Args) {
				t.Fatalf("round trip of %q: %+v then %+v", line, fr, fr2)
			}
		}

		// The same bytes as a stream: every read ends, in a frame, a bad
		// frame or the end of the input, and the reads are bounded.
		c := newLineCodec(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(line), io.Discard}, max(16, maxFrame))
		for i := 0; ; i++ {
			if i > len(line)+1 {
				t.Fatalf("%d reads from %d bytes: the codec does not make progress", i, len(line))
			}
			fr, err := c.ReadFrame()
			if err == nil {
				checkFrame(t, line, fr)
				continue
			}
			if errors.Is(err, ErrBadFrame) {
				continue
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("stream %q: %v", line, err)
			}
			break
		}
	})
}

func checkFrame(t *testing.T, in []byte, fr Frame) {
	t.Helper()
	if fr.Cmd == "" || fr.Cmd != strings.ToLower(fr.Cmd) {
		t.Fatalf("%q: command %q is empty or not lower case", in, fr.Cmd)
	}
	if len(fr.Args) > maxArgs {
		t.Fatalf("%q: %d arguments, more than %d", in, len(fr.Args), maxArgs)
	}
	for _, w := range append([]string{fr.Cmd}, fr.Args...) {
		if w == "" || !utf8.ValidString(w) || strings.ContainsAny(w, " \t\r\n\x00\x7f") {
			t.Fatalf("%q: word %q is empty, not UTF-8 or holds a blank or control byte", in, w)
		}
	}
}
