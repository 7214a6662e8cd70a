package host_test

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hothost/hothost/internal/hostproc"
)

// The browser test drives the page the host serves (-ws-listen) in real
// headless Chromium: log in with a ticket, play, swap coin v2 in while the
// page stays open, see v2 replies with no reload, and a gift from another
// player arrive as a push.

// browser is one headless Chromium tab and what its console said.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string // errors and uncaught exceptions
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	chrome, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("this test drives Debian's chromium, which is not installed (%v); .ci/run installs it (apt-get install -y chromium)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1000, 1000),
	)
	bctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc(); cancel() }) // before TempDir's cleanup: Chromium has exited
	b := &browser{t: t, ctx: bctx}
	messages := chromedp.Console(bctx) // subscribes now: nothing the page logs is missed
	go func() {
		for m, err := range messages {
			if err != nil {
				return // the tab closed
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.console = append(b.console, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) text(css string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", css, err)
	}
	return s
}

// reply waits for the answer to the page's request number seq (its log
// entry's data-seq) and returns the reply and the version badge.
func (b *browser) reply(seq int) (reply, version string) {
	b.t.Helper()
	entry := fmt.Sprintf(`#log li[data-seq="%d"]`, seq)
	b.do(chromedp.WaitReady(chromedp.CSS(entry + ".answered")))
	v, err := chromedp.Run(b.ctx, chromedp.AttributeValue(chromedp.CSS(entry), "data-version"))
	if err != nil {
		b.t.Fatal(err)
	}
	return b.text(entry + " .reply"), v.Value
}

// press clicks the button of a command.
func (b *browser) press(cmd string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#game button[data-cmd=%q]`, cmd))))
}

func TestBrowserPlaysThroughACoinSwap(t *testing.T) {
	t.Parallel()
	b := startBrowser(t)
	p, cfg := startHost(t, "-ws-listen", "127.0.0.1:0")
	addr := wsAddr(t, p)
	tk, err := p.Ticket(42)
	if err != nil {
		t.Fatal(err)
	}

	// Log in: request 1 is the login, 2 the help the page sends after it.
	b.do(chromedp.Navigate("http://"+addr+"/"),
		chromedp.SetValue(chromedp.CSS("#player"), "42"),
		chromedp.SetValue(chromedp.CSS("#ticket"), tk),
		chromedp.Click(chromedp.CSS("#login-btn")),
		chromedp.WaitEnabled(chromedp.CSS(`#game button[data-cmd="work"]`)))
	if r, _ := b.reply(1); !strings.HasPrefix(r, "ok ") {
		t.Fatalf("login: %q", r)
	}
	if shown := b.text(`#log li[data-seq="1"] .req`); strings.Contains(shown, tk) {
		t.Fatalf("the log shows the ticket: %q", shown)
	}
	b.reply(2)
	if mods := b.text("#module-list"); !strings.Contains(mods, "coin 1.0.0") {
		t.Fatalf("active modules after login: %q", mods)
	}
	b.press("work")
	if r, v := b.reply(3); r != "ok coins 10 level 0 v1" || v != "v1" {
		t.Fatalf("work on coin 1: %q, version badge %q", r, v)
	}

	// Swap coin 2 in while the page stays open.
	if err := hostproc.Install(filepath.Join(staging, "coin-2.0.0.so"), filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
		t.Fatal(err)
	}
	waitActive(t, p, "coin", "2.0.0")
	b.press("work")
	if r, v := b.reply(4); !strings.HasPrefix(r, "ok coins 30 ") || !strings.HasSuffix(r, " v2") || v != "v2" {
		t.Fatalf("work on coin 2: %q, version badge %q", r, v)
	}
	b.press("help")
	b.reply(5)
	if mods := b.text("#module-list"); !strings.Contains(mods, "coin 2.0.0") {
		t.Fatalf("active modules after the swap: %q", mods)
	}
	// No reload: the v1 reply is still in the log, the session still logged in.
	if _, v := b.reply(3); v != "v1" || !strings.Contains(b.text("#conn"), "player 42") {
		t.Fatalf("the page lost its log or session across the swap: entry 3 version %q, status %q", v, b.text("#conn"))
	}

	// A gift from another player arrives as a push, between replies, and
	// the coins with it.
	ada := dial(t, p, 7)
	for range 3 {
		do(t, ada, "work")
	}
	if r := do(t, ada, "give 42 50"); !r.OK {
		t.Fatalf("give 42 50: %s", r)
	}
	b.do(chromedp.WaitReady(chromedp.CSS("#log li.push")))
	if push := b.text("#log li.push"); push != "you received 50 coins from 7" {
		t.Fatalf("push shown: %q", push)
	}
	b.press("balance")
	if r, _ := b.reply(6); !strings.HasPrefix(r, "ok coins 80 ") {
		t.Fatalf("balance after the gift: %q, want 30 earned and 50 given", r)
	}

	shot, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.ArtifactDir(), "browser.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	checkNotBlank(t, file)

	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.console) > 0 {
		t.Fatalf("the page logged errors: %q", b.console)
	}
}

// checkNotBlank decodes the PNG file and wants more than one colour in it.
func checkNotBlank(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	colours := map[[4]uint32]bool{}
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y && len(colours) < 2; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, b, a}] = true
		}
	}
	if bounds.Empty() || len(colours) < 2 {
		t.Fatalf("screenshot %s is blank: %v, %d colour(s)", file, bounds, len(colours))
	}
	t.Logf("screenshot: %s (%dx%d)", file, bounds.Dx(), bounds.Dy())
}
