package host_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hothost/hothost/host"
	"github.com/hothost/hothost/internal/hostproc"
)

// startDashboard runs `hotctl <how> dashboard` (how: the flags that say
// where the admin API is) and returns the URL it printed (which carries
// the key); the command is stopped at cleanup.
func startDashboard(t *testing.T, how ...string) (url string, log *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bins.Hotctl, append(how, "dashboard")...)
	log = &bytes.Buffer{}
	cmd.Stderr = log
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("hotctl dashboard did not stop cleanly on SIGTERM: %v\n%s", err, log)
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://127.0.0.1:") || !strings.Contains(line, "/?key=") {
		t.Fatalf("hotctl dashboard printed %q (%v), want its URL\n%s", line, err, log)
	}
	return strings.TrimSpace(line), log
}

func httpGet(t *testing.T, c *http.Client, url string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestDashboardOnAdminTCPNeedsToken(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("dash-token\n"), 0o600)
	p, cfg := startHost(t, "-admin-addr", "127.0.0.1:0", "-admin-token-file", tokenFile)
	do(t, dial(t, p, 3), "work")
	st := hostStatus(t, p)
	base, auth := "http://"+st.AdminAddr, []string{"Authorization", "Bearer dash-token"}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	if code, _, _ := httpGet(t, http.DefaultClient, base+"/dashboard/"); code != http.StatusUnauthorized {
		t.Fatalf("dashboard without a token: %d, want 401", code)
	}
	code, hd, body := httpGet(t, http.DefaultClient, base+"/dashboard/", auth...)
	if code != http.StatusOK || !strings.Contains(body, "<title>hothost dashboard</title>") || !strings.Contains(hd.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("dashboard with the token: %d %v\n%.300s", code, hd, body)
	}
	// Nothing in the page comes from elsewhere.
	for _, f := range []string{"index.html", "dashboard.js", "dashboard.css"} {
		_, _, body := httpGet(t, http.DefaultClient, base+"/dashboard/"+f, auth...)
		if strings.Contains(body, "//cdn") || strings.Contains(body, "https://") {
			t.Fatalf("%s refers to another site", f)
		}
	}
	if code, hd, _ := httpGet(t, noRedirect, base+"/dashboard", auth...); code/100 != 3 || hd.Get("Location") != "/dashboard/" {
		t.Fatalf("/dashboard: %d to %q, want a redirect to /dashboard/", code, hd.Get("Location"))
	}
	var use host.Usage
	_, _, body = httpGet(t, http.DefaultClient, base+"/v1/usage", auth...)
	if err := json.Unmarshal([]byte(body), &use); err != nil {
		t.Fatalf("usage: %v\n%s", err, body)
	}
	var coin *host.VersionUsage
	for i := range use.Versions {
		if use.Versions[i].Module == "coin" {
			coin = &use.Versions[i]
		}
	}
	if coin == nil || coin.Version != "1.0.0" || coin.Requests < 1 || coin.Latency.Count != coin.Requests ||
		len(coin.Latency.Bounds) == 0 || len(coin.Latency.Bounds) != len(coin.Latency.Buckets) {
		t.Fatalf("usage of coin: %+v", coin)
	}
	if got := auditLines(t, cfg, "/dashboard/"); len(got) < 2 || !strings.HasSuffix(got[0], " 401") {
		t.Fatalf("dashboard calls in the audit log: %q", got)
	}
	// A browser cannot send the token: hotctl dashboard adds it.
	url, _ := startDashboard(t, "-addr", st.AdminAddr, "-token", "dash-token")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if code, _, body := httpGet(t, browser, url); code != http.StatusOK || !strings.Contains(body, "hothost dashboard") {
		t.Fatalf("the dashboard through hotctl -addr -token: %d\n%.200s", code, body)
	}
	if code, _, body := httpGet(t, browser, url[:strings.Index(url, "/?key=")]+"/v1/usage"); code != http.StatusOK || !strings.Contains(body, `"module": "coin"`) {
		t.Fatalf("usage through hotctl -addr -token: %d\n%.200s", code, body)
	}
}

func TestDashboardProxyNeedsItsKey(t *testing.T) {
	t.Parallel()
	p, _ := startHost(t)
	url, _ := startDashboard(t, "-socket", p.Socket)
	root := url[:strings.Index(url, "/?key=")]
	if code, _, _ := httpGet(t, http.DefaultClient, root+"/v1/status"); code != http.StatusUnauthorized {
		t.Fatalf("proxy without the key: %d, want 401", code)
	}
	if code, _, _ := httpGet(t, http.DefaultClient, root+"/?key=00"); code != http.StatusUnauthorized {
		t.Fatalf("proxy with a wrong key: %d, want 401", code)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if code, _, body := httpGet(t, browser, url); code != http.StatusOK || !strings.Contains(body, "hothost dashboard") {
		t.Fatalf("opening the printed URL: %d\n%.200s", code, body)
	}
	noRedirect := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if code, hd, _ := httpGet(t, noRedirect, url+"&poll=500"); code != http.StatusSeeOther || hd.Get("Location") != "/dashboard/?poll=500" {
		t.Fatalf("the printed URL with the page's parameters: %d to %q, want 303 to /dashboard/?poll=500", code, hd.Get("Location"))
	}
	var st host.Status
	code, _, body := httpGet(t, browser, root+"/v1/status")
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || st.PID != p.Cmd.Process.Pid {
		t.Fatalf("status through the proxy: %d %v %+v", code, err, st)
	}
	// An action needs the page's header too: a form on another site cannot send it.
	req, _ := http.NewRequest("POST", root+"/v1/rollback?module=coin", nil)
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST without the page's header: %d, want 403", resp.StatusCode)
	}
	if code, _, _ := httpGet(t, browser, root+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("a path outside /dashboard/ and /v1/: %d, want 404", code)
	}
}

// chromium finds Debian's chromium; its absence fails the test, since
// .ci/run installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatal("chromium is not installed: .ci/run installs it (apt-get install -y chromium); the dashboard test drives it")
	return ""
}

// TestDashboardSwapAndRollbackInChromium opens the dashboard through
// `hotctl dashboard` in headless Chromium while a load runs, swaps coin
// 2.0.0 in, reads the timeline and the charts from the DOM, rolls back
// with the page's button and its confirmation, and keeps a screenshot.
func TestDashboardSwapAndRollbackInChromium(t *testing.T) {
	t.Parallel()
	exe := chromium(t)
	began := time.Now()
	step := func(what string) { t.Logf("%6.2fs %s", time.Since(began).Seconds(), what) }
	p, cfg := startHost(t)
	l := startLoad(t, p, 4)
	waitAcks(t, l, 200)
	url, proxyLog := startDashboard(t, "-socket", p.Socket)
	step("host, load and hotctl dashboard running")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true), chromedp.NoFirstRun, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1300, 1500))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	defer cancelBrowser()
	fail := func(what string, err error) {
		t.Helper()
		html, _ := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("body")))
		t.Fatalf("%s: %v\nhotctl dashboard:\n%s\npage:\n%.4000s", what, err, proxyLog, html)
	}
	// The printed URL sets the key's cookie and goes on to the page, here
	// polling fast.
	if err := chromedp.Do(bctx, chromedp.Navigate(url+"&poll=250")); err != nil {
		fail("open the dashboard", err)
	}
	step("dashboard open")
	// The page redraws its timeline and charts at every poll, so a node
	// found now may be gone a moment later: the checks run as one script
	// in the page, polled until it holds.
	// (No timeout of its own: the test's context bounds the wait.)
	present := func(selectors ...string) error {
		js := "true"
		for _, s := range selectors {
			js += fmt.Sprintf(" && document.querySelector(%q) !== null", s)
		}
		_, err := chromedp.Run(bctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(0)))
		return err
	}
	row := func(version, state string) string {
		return `#timeline g.tl-row[data-module="coin"][data-version="` + version + `"][data-state="` + state + `"]`
	}
	if err := present(row("1.0.0", "active"), `#chart-rate path.series[data-series="coin 1.0.0"]`); err != nil {
		fail("coin 1.0.0 active with a request series", err)
	}
	step("coin 1.0.0 active with a request series")

	if err := hostproc.Install(filepath.Join(staging, "coin-2.0.0.so"), filepath.Join(cfg.Dir, "plugins-dir")); err != nil {
		t.Fatal(err)
	}
	waitActive(t, p, "coin", "2.0.0")
	step("coin 2.0.0 active")
	if err := present(row("2.0.0", "active"), row("1.0.0", "standby"), `#chart-rate path.series[data-series="coin 2.0.0"]`,
		`#chart-p99 path.series[data-series="coin 2.0.0"]`, `#series-legend li[data-series="coin 2.0.0"]`); err != nil {
		fail("the swap to coin 2.0.0 in the timeline and the charts", err)
	}
	step("the page shows the swap")
	hover, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('#timeline g.tl-row[data-module="coin"][data-version="1.0.0"] title').textContent`))
	if err != nil || !strings.Contains(hover, "standby") || !strings.Contains(hover, "replaced by 2.0.0") {
		t.Fatalf("the timeline's hover text for coin 1.0.0: %q %v, want its state and reason", hover, err)
	}

	// Roll back: first cancelled, then confirmed.
	rollback := chromedp.CSS(`button[data-action="rollback"][data-module="coin"]`)
	if err := chromedp.Do(bctx, chromedp.Click(rollback), chromedp.WaitVisible(chromedp.CSS("#confirm[open]")), chromedp.Click(chromedp.ID("confirm-cancel")),
		chromedp.WaitNotPresent(chromedp.CSS("#confirm[open]"))); err != nil {
		fail("open and cancel the rollback", err)
	}
	if err := chromedp.Do(bctx, chromedp.Click(rollback), chromedp.WaitVisible(chromedp.CSS("#confirm[open]"))); err != nil {
		fail("open the rollback confirmation", err)
	}
	ask, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("confirm-title")))
	if err != nil || ask != "Roll back coin?" {
		t.Fatalf("confirmation asks %q (%v), want %q", ask, err, "Roll back coin?")
	}
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.ID("confirm-ok"))); err != nil {
		fail("confirm the rollback", err)
	}
	waitActive(t, p, "coin", "1.0.0")
	step("rolled back from the page")
	if s, reason := stateOf(t, p, "coin", "2.0.0"); s != "rolled back" {
		t.Fatalf("coin 2.0.0 after the page's rollback: %s (%s), want rolled back", s, reason)
	}
	// The audit line is written as the call answers: the state can be
	// seen a moment before it.
	if got := waitAudit(t, cfg, "/v1/rollback"); len(got) != 1 || got[0] != "POST /v1/rollback?module=coin 200" {
		t.Fatalf("rollbacks in the audit log: %q, want exactly the confirmed one", got)
	}
	if err := present(row("1.0.0", "active"), row("2.0.0", "rolled back")); err != nil {
		fail("the rollback in the timeline", err)
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	checkScreenshot(t, file)
	step("screenshot")

	res := l.Stop()
	if res.Failed > 0 || res.Transport > 0 {
		t.Fatalf("%d failed and %d lost requests during the swap and the rollback: %v", res.Failed, res.Transport, res.Codes)
	}
}

// waitAudit polls the audit log until it has a line about filter.
func waitAudit(t *testing.T, cfg hostproc.Config, filter string) []string {
	t.Helper()
	for start := time.Now(); time.Since(start) < time.Minute; time.Sleep(20 * time.Millisecond) {
		if got := auditLines(t, cfg, filter); len(got) > 0 {
			return got
		}
	}
	t.Fatalf("no %s call in the audit log", filter)
	return nil
}

// checkScreenshot decodes the PNG at file and checks it shows something:
// more than one colour.
func checkScreenshot(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", file, err)
	}
	colours := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 2 {
		t.Fatalf("screenshot %s (%dx%d) is blank: %d colour", file, b.Dx(), b.Dy(), len(colours))
	}
	t.Logf("screenshot %s: %dx%d, %d colours", file, b.Dx(), b.Dy(), len(colours))
}
