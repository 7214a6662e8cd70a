package host

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseFrame(t *testing.T) {
	cases := []struct {
		in      string
		cmd     string
		args    []string
		badWhat string // substring of the error, "" for a good frame
	}{
		{"work\n", "work", nil, ""},
		{"BUY  sword \r\n", "buy", []string{"sword"}, ""},
		{"name Ada\tLovelace", "name", []string{"Ada", "Lovelace"}, ""},
		{"\n", "", nil, "empty"},
		{"   \n", "", nil, "empty"},
		{"work\x00\n", "", nil, "control byte 0x00"},
		{"w\x7fork\n", "", nil, "control byte 0x7f"},
		{"\xff\xfe\n", "", nil, "not UTF-8"},
		{strings.Repeat("a ", 20) + "\n", "", nil, "more than 16 arguments"},
		{strings.Repeat("a", 65) + "\n", "", nil, "longer than 64 bytes"},
		{"#17 work\n", "work", nil, ""},
		{"#a.b-c_d:9 buy sword\n", "buy", []string{"sword"}, ""},
		{"# work\n", "", nil, "must be 1 to 32"},
		{"#" + strings.Repeat("t", 33) + " work\n", "", nil, "must be 1 to 32"},
		{"#t/1 work\n", "", nil, `holds '/'`},
		{"#17\n", "", nil, "empty"},
	}
	for _, c := range cases {
		f, err := ParseFrame([]byte(c.in), 64)
		if c.badWhat != "" {
			if !errors.Is(err, ErrBadFrame) || !strings.Contains(err.Error(), c.badWhat) {
				t.Errorf("ParseFrame(%q) = %v, want ErrBadFrame naming %q", c.in, err, c.badWhat)
			}
			continue
		}
		wantTag := ""
		if strings.HasPrefix(c.in, "#") {
			wantTag = strings.Fields(c.in)[0][1:]
		}
		if err != nil || f.Cmd != c.cmd || strings.Join(f.Args, ",") != strings.Join(c.args, ",") || f.Tag != wantTag {
			t.Errorf("ParseFrame(%q) = %+v, %v; want %s %v", c.in, f, err, c.cmd, c.args)
		}
	}
}

// The codec skips an oversized line whole: the next frame parses cleanly.
func TestLineCodecOversizedThenGood(t *testing.T) {
	var out bytes.Buffer
	in := strings.NewReader(strings.Repeat("x", 300) + "\nwork\n")
	c := newLineCodec(struct {
		io.Reader
		io.Writer
	}{in, &out}, 32)
	if _, err := c.ReadFrame(); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("oversized: %v, want ErrBadFrame", err)
	}
	f, err := c.ReadFrame()
	if err != nil || f.Cmd != "work" {
		t.Fatalf("frame after the oversized one: %+v %v", f, err)
	}
	c.WriteReply(errReply("x", "two\nlines"))
	c.WriteReply(okReply(""))
	if got := out.String(); got != "err x two lines\nok\n" {
		t.Fatalf("replies written as %q", got)
	}
}
